"""The store's bounds: how much space it takes and may take, and eviction when over.

The budget is `store.max_bytes`, shrunk when the file system holds less than
`store.min_free_bytes` beyond what the store could still take. Space counts the
pages holding data plus the write-ahead log: free pages inside the file are
reused before the file grows, so they are not counted.

Eviction deletes the oldest readings of the lowest priority first: low, then
normal, then high, and `critical` last of all. Every reading evicted is counted
for each sink that had not yet confirmed it, by reason and priority (table
`losses`); a compacted row counts for all the readings it holds.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.clock import Clock
from gateway.store.inflight import InFlight
from gateway.store.schema import EVICTION_ORDER, READINGS, add_loss, add_tally, transaction

EVICT_CHUNK = 20000
NO_SINK = "-"  # losses of a store with no sink configured

#: loss reasons (stable: they are metric tags)
EVICTED_AGE = "evicted_max_age"
EVICTED_SIZE = "evicted_size"


@dataclass(frozen=True)
class Space:
    """One measurement of the store's size against its budget, in bytes."""

    used: int  # pages holding data, plus the WAL
    file: int  # the database file (free pages included)
    wal: int
    free_pages: int  # bytes of free pages inside the file
    fs_free: int  # free on the file system, for this process
    budget: int
    rows: int = 0

    @property
    def pressure(self) -> float:
        """used / budget: 1.0 and above means evict."""
        return self.used / self.budget if self.budget > 0 else float("inf")


def measure(conn: sqlite3.Connection, path: Path, max_bytes: int, min_free: int) -> Space:
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    (free,) = conn.execute("PRAGMA freelist_count").fetchone()
    try:
        wal = os.stat(f"{path}-wal").st_size
    except OSError:
        wal = 0
    try:
        st = os.statvfs(path.parent)
        fs_free = st.f_bavail * st.f_frsize
    except OSError:
        fs_free = 0
    file_bytes = pages * page_size
    used = (pages - free) * page_size + wal
    budget = max_bytes
    if min_free:
        # What the store could still grow into, with min_free left over.
        budget = min(budget, used + free * page_size + fs_free - min_free)
    return Space(used, file_bytes, wal, free * page_size, fs_free, max(budget, 0))


class Evictor:
    """Deletes readings by age or to fit the budget, counting every one per sink."""

    def __init__(self, conn: sqlite3.Connection, inflight: InFlight,
                 clock: Clock) -> None:
        self.conn = conn
        self.inflight = inflight
        self.clock = clock
        #: called before readings are deleted: the writer's flush (see schema)
        self.before_delete: Callable[[], None] = lambda: None
        #: readings evicted (a compacted row counts for all it holds) by (reason, priority);
        #: the caller takes and clears it
        self.evicted: Counter[tuple[str, str]] = Counter()

    def oldest_ts(self) -> dict[str, int]:
        """Per priority, the timestamp of its oldest stored row (by id)."""
        out = {}
        for priority, table in READINGS.items():
            row = self.conn.execute(f"SELECT ts FROM {table} ORDER BY id LIMIT 1").fetchone()
            if row is not None:
                out[priority] = int(row[0])
        return out

    def evict_older_than(self, max_age: float, limit: int = EVICT_CHUNK) -> int:
        """Delete readings older than `max_age` seconds (oldest ids first). Returns rows."""
        cutoff = int((self.clock.now() - max_age) * 1000)
        total = 0
        for priority in EVICTION_ORDER:
            total += self._evict(priority, limit, EVICTED_AGE, cutoff)
        return total

    def evict_oldest(self, rows: int) -> int:
        """Delete up to `rows` readings of the lowest priority that has any, oldest first.

        Returns rows deleted.
        """
        for priority in EVICTION_ORDER:
            n = self._evict(priority, rows, EVICTED_SIZE)
            if n:
                return n
        return 0

    def evict_dead_letters(self, rows: int, older_than_ms: int | None = None) -> int:
        """Dead letters were counted lost already; their kept copies go before live readings."""
        where = "" if older_than_ms is None else "WHERE ts < ?"
        params: tuple = () if older_than_ms is None else (older_than_ms,)
        with transaction(self.conn):
            cur = self.conn.execute(
                f"DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters {where} "
                "ORDER BY id LIMIT ?)", (*params, rows))
            if cur.rowcount:
                add_tally(self.conn, "dead_letters_evicted", cur.rowcount)
        return max(cur.rowcount, 0)

    def _evict(self, priority: str, limit: int, reason: str, cutoff: int | None = None) -> int:
        """Delete up to `limit` of the oldest rows of one priority (younger than `cutoff`
        stop it), skipping rows a sink is sending. Returns rows deleted."""
        table = READINGS[priority]
        self.before_delete()
        with self.inflight.lock, transaction(self.conn):
            claims = self.inflight.claims()
            skip = "".join(" AND NOT (r.id > ? AND r.id <= ?)" for _ in claims)
            found = self.conn.execute(
                f"SELECT r.id, r.ts, coalesce(u.samples, 1) FROM {table} r "
                f"LEFT JOIN rollups u ON u.id = r.id WHERE 1{skip} ORDER BY r.id LIMIT ?",
                (*[x for claim in claims for x in claim], limit)).fetchall()
            victims = []
            for rid, ts, samples in found:
                if cutoff is not None and ts >= cutoff:
                    break  # rows are in arrival order: the rest are younger
                victims.append((rid, samples))
            if victims:
                self._count(victims, priority, reason)
                ids = [(rid,) for rid, _ in victims]
                self.conn.executemany(f"DELETE FROM {table} WHERE id = ?", ids)
                self.conn.executemany("DELETE FROM rollups WHERE id = ?", ids)
        if victims:
            self.evicted[(reason, priority)] += sum(n for _, n in victims)
        return len(victims)

    def _count(self, victims: list[tuple[int, int]], priority: str, reason: str) -> None:
        cursors = [(s, int(c)) for s, c in self.conn.execute("SELECT sink, last_id FROM cursors")]
        lost: dict[str, int] = {}
        for sink, cursor in cursors or [(NO_SINK, -1)]:
            n = sum(samples for rid, samples in victims if rid > cursor)
            if n:
                lost[sink] = n
        for sink, n in lost.items():
            add_loss(self.conn, reason, sink, n, priority)
