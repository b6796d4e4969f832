"""The durable outbox: readings wait here until every sink has confirmed them.

One `Outbox` per thread that uses it (each has its own SQLite connection);
WAL lets the ingest thread write while forwarders read.

- `append()` + `commit()`: the ingest stage's group commit. A reading is
  *accepted* when `commit()` returns.
- `cursor()`, `rows_after()`, `confirm()`, `record()`: the forwarders' path. A
  forwarder reads its cursor once, reads `rows_after()` a position it keeps in
  memory, saves it with `confirm()` every few seconds (a crash sends the unsaved
  stretch again: at least once), and writes a batch's losses with its cursor in
  one `record()`. `fetch()` is the same read from the saved cursor (commands, tests).
- `purge()`: deletes rows every registered sink has confirmed.

Bounds, compaction and eviction (`gateway.store.housekeeping`) work on the same
tables through their own connection.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.clock import SYSTEM, Clock
from gateway.model import Reading, Rollup, Row, SeriesInfo, rollup_kind
from gateway.store.schema import (
    READINGS,
    add_loss,
    connect,
    ensure_schema,
    highest_id,
    merged,
    transaction,
)

DB_NAME = "gateway.db"
_PURGE_CHUNK = 50000


@dataclass(frozen=True)
class Backlog:
    sink: str
    rows: int
    oldest_ts: float | None
    last_id: int

    def age(self, now: float) -> float:
        """Seconds the oldest unsent reading has waited (0 with nothing waiting)."""
        return max(0.0, now - self.oldest_ts) if self.oldest_ts is not None else 0.0


_FETCH = merged("r.id, r.series, r.ts, r.value", "r.id > ?") + " ORDER BY id LIMIT ?"
_FIRST_TS = merged("r.id, r.ts", "r.id > ?") + " ORDER BY id LIMIT 1"


class Outbox:
    """A connection to the store, for one thread."""

    def __init__(self, data_dir: str | Path, durability: str = "full",
                 readonly: bool = False, clock: Clock = SYSTEM) -> None:
        self.path = Path(data_dir) / DB_NAME
        self.clock = clock
        #: backlogs() kept running: sink -> (after id, highest id, rows, reshaped)
        self._counted: dict[str, tuple[int, int, int, int]] = {}
        self.conn = connect(self.path, durability, readonly)
        if not readonly:
            ensure_schema(self.conn)
        self._series_ids: dict[tuple[str, str, str, str, tuple[tuple[str, str], ...]], int] = {}
        self._series_info: dict[int, SeriesInfo] = {}
        self._series_table: dict[int, str] = {}
        # Decoders hand out one tags dict per device for most readings: finding the
        # series by that dict's identity saves sorting the tags for every reading.
        # The dict is kept in the entry, so its id cannot be reused while cached.
        self._by_identity: dict[tuple[str, str, str, str, int],
                                tuple[dict[str, str], int]] = {}
        self._last_ts: dict[int, int] = {}
        #: in the open transaction: each series' last ts before it (None: none known),
        #: and the series it created, to undo on rollback
        self._before: dict[int, int | None] = {}
        self._created: list[tuple[tuple[str, str, str, str, tuple[tuple[str, str], ...]],
                                  int]] = []
        #: series whose last ts is newer in memory than in the series table
        self._dirty: set[int] = set()
        self._in_tx = False
        self._first_in_tx = 0
        self._pending = 0
        self._next_id = 0  # 0: not read yet (the first append reads it)
        self._flushed_id = 0  # the highest id written to meta.last_id
        #: readings stamped later than they arrived by over a second, to keep each
        #: series in order after the clock stepped back (the caller reads and resets)
        self.shifted = 0
        self.max_shift_ms = 0

    def close(self) -> None:
        if self._next_id and not self._in_tx:  # only a connection that wrote readings
            try:
                self.flush()
            except sqlite3.Error:
                pass  # the next start reads what the flush would have written
        self.conn.close()

    # -- writing (the ingest thread) -------------------------------------------------

    def _start_writing(self) -> None:
        """The first append: where the id sequence stands, and each series' last ts
        that only the stored rows know (appended after the last flush)."""
        self._flushed_id = highest_id(self.conn)
        self._next_id = self._flushed_id + 1
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'flushed_upto'").fetchone()
        since = int(row[0]) if row else 0
        last_ts = self._last_ts
        for table in READINGS.values():
            for sid, ts in self.conn.execute(f"SELECT series, max(ts) FROM {table} "
                                             "WHERE id > ? GROUP BY series", (since,)):
                if ts > last_ts.get(sid, 0):
                    last_ts[sid] = ts
                    self._dirty.add(sid)

    def flush(self) -> None:
        """Write what lives only in the writer's memory: each series' last timestamp and
        the last id given (see gateway.store.schema). Called before readings are deleted,
        every few minutes, and on close."""
        if self._in_tx:
            raise RuntimeError("flush() inside an open append transaction")
        if not self._next_id:
            # Nothing appended yet through this connection (a purge right after a
            # start): what the file's rows know must be written all the same.
            self._start_writing()
        last = self._next_id - 1
        if not self._dirty and last == self._flushed_id:
            return
        with transaction(self.conn):
            if self._dirty:
                self.conn.executemany("UPDATE series SET last_ts = max(last_ts, ?) WHERE id = ?",
                                      [(self._last_ts[sid], sid) for sid in self._dirty])
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'last_id' AND "
                              "CAST(value AS INTEGER) < ?", (str(last), last))
            self.conn.execute("INSERT OR REPLACE INTO meta (key, value) "
                              "VALUES ('flushed_upto', ?)", (str(last),))
        self._dirty.clear()
        self._flushed_id = last

    def _series_id(self, r: Reading) -> int:
        key = (r.metric, r.type, r.unit, r.priority, tuple(sorted(r.tags.items())))
        sid = self._series_ids.get(key)
        if sid is not None:
            return sid
        tags = json.dumps(dict(key[4]), separators=(",", ":"), ensure_ascii=False)
        params = (r.metric, r.type, r.unit, r.priority, tags)
        self.conn.execute("INSERT OR IGNORE INTO series (metric, type, unit, priority, tags, "
                          "rollup) VALUES (?, ?, ?, ?, ?, ?)",
                          (*params, rollup_kind(r.type, r.rollup)))
        sid, last_ts = self.conn.execute(
            "SELECT id, last_ts FROM series WHERE metric = ? AND type = ? AND unit = ? AND "
            "priority = ? AND tags = ?", params).fetchone()
        if self._in_tx:
            self._created.append((key, sid))
        self._series_ids[key] = sid
        self._series_table[sid] = READINGS[r.priority]
        if last_ts and self._last_ts.get(sid, 0) < last_ts:
            self._last_ts[sid] = last_ts
        return sid

    def append(self, readings: Iterable[Reading]) -> int:
        """Add readings to the open transaction (begun if needed). Not durable until commit.

        Timestamps are kept unique per series at millisecond resolution: InfluxDB
        and VictoriaMetrics keep one point per series and timestamp, so two
        readings in one millisecond would silently become one downstream. If the
        clock steps back, a series' next readings are stamped just after its last
        one until the clock catches up: in order, none overwritten, and counted in
        `shifted`.
        """
        if not self._in_tx:
            # IMMEDIATE: under the write lock from the start, as the only writer of rows.
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            if not self._next_id:
                self._start_writing()
            self._first_in_tx = self._next_id
        by_table: dict[str, list[tuple[int, int, int, float]]] = {}
        last_ts = self._last_ts
        before = self._before
        by_identity = self._by_identity
        tables = self._series_table
        next_id = self._next_id
        for r in readings:
            tags = r.tags
            ikey = (r.metric, r.type, r.unit, r.priority, id(tags))
            hit = by_identity.get(ikey)
            if hit is not None and hit[0] is tags:
                sid = hit[1]
            else:
                sid = self._series_id(r)
                if len(by_identity) > 50000:
                    by_identity.clear()
                by_identity[ikey] = (tags, sid)
            ts = int(r.ts * 1000)
            prev = last_ts.get(sid)
            if prev is not None and ts <= prev:
                # Not a burst within a millisecond: the clock went back. A device's
                # own time stepping back (a redelivered or late message, a device
                # clock set right) says nothing about the gateway's clock.
                if prev - ts > 1000 and not r.device_time:
                    self.shifted += 1
                    self.max_shift_ms = max(self.max_shift_ms, prev + 1 - ts)
                ts = prev + 1
            if sid not in before:
                before[sid] = prev
            last_ts[sid] = ts
            table = tables[sid]
            rows = by_table.get(table)
            if rows is None:
                rows = by_table[table] = []
            rows.append((next_id, sid, ts, r.value))
            next_id += 1
        for table, rows in by_table.items():
            self.conn.executemany(f"INSERT INTO {table} (id, series, ts, value) "
                                  "VALUES (?, ?, ?, ?)", rows)
        added = next_id - self._next_id
        self._next_id = next_id
        self._pending += added
        return added

    def commit(self) -> int:
        """Make appended readings durable. Returns how many were committed."""
        if not self._in_tx:
            return 0
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error:
            self.rollback()
            raise
        self._in_tx = False
        self._dirty.update(self._before)
        self._before.clear()
        self._created.clear()
        done, self._pending = self._pending, 0
        return done

    def rollback(self) -> None:
        if self._in_tx:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            # What the failed transaction gave out is not given: ids, timestamps, and
            # the series rows it inserted.
            self._next_id = self._first_in_tx
            for sid, prev in self._before.items():
                if prev is None:
                    self._last_ts.pop(sid, None)
                else:
                    self._last_ts[sid] = prev
            for key, sid in self._created:
                self._series_ids.pop(key, None)
                self._series_table.pop(sid, None)
            if self._created:
                self._by_identity.clear()
        self._in_tx = False
        self._pending = 0
        self._before.clear()
        self._created.clear()
        self.shifted = 0
        self.max_shift_ms = 0

    # -- sinks and cursors ---------------------------------------------------------------

    def register_sinks(self, names: Sequence[str]) -> list[str]:
        """Make sure each sink has a cursor; drop cursors of sinks no longer configured.

        A new sink starts at the oldest row still stored, so it receives what is
        waiting. Returns the names of sinks whose cursors were dropped.
        """
        now = self.clock.now()
        first = self.conn.execute(merged("r.id") + " ORDER BY id LIMIT 1").fetchone()
        oldest = int(first[0]) - 1 if first is not None else highest_id(self.conn)
        with transaction(self.conn):
            for name in names:
                self.conn.execute("INSERT OR IGNORE INTO cursors (sink, last_id, updated) "
                                  "VALUES (?, ?, ?)", (name, oldest, now))
            gone = [s for (s,) in self.conn.execute("SELECT sink FROM cursors")
                    if s not in names]
            for name in gone:
                self.conn.execute("DELETE FROM cursors WHERE sink = ?", (name,))
        return gone

    def cursor(self, sink: str) -> int:
        row = self.conn.execute("SELECT last_id FROM cursors WHERE sink = ?", (sink,)).fetchone()
        if row is None:
            raise KeyError(f"no cursor for sink {sink!r}")
        return int(row[0])

    def cursors(self) -> dict[str, int]:
        return {s: int(i) for s, i in self.conn.execute("SELECT sink, last_id FROM cursors")}

    def series_info(self, sid: int) -> SeriesInfo:
        info = self._series_info.get(sid)
        if info is None:
            row = self.conn.execute("SELECT metric, type, unit, priority, tags, rollup "
                                    "FROM series WHERE id = ?", (sid,)).fetchone()
            info = SeriesInfo(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5])
            self._series_info[sid] = info
        return info

    def fetch(self, sink: str, limit: int, after: int | None = None) -> list[Row]:
        """The next `limit` readings after the sink's cursor (or after `after`)."""
        start = self.cursor(sink) if after is None else after
        return self.rows_after(start, limit)

    def rows_after(self, start: int, limit: int) -> list[Row]:
        """Up to `limit` readings with ids above `start`, in id order, rollups attached."""
        rows = self.conn.execute(_FETCH, (start,) * len(READINGS) + (limit,)).fetchall()
        if not rows:
            return []
        rollups = {rid: Rollup(n, lo, hi, last, last_ts) for rid, n, lo, hi, last, last_ts in
                   self.conn.execute("SELECT id, samples, min, max, last, last_ts FROM rollups "
                                     "WHERE id > ? AND id <= ?", (start, rows[-1][0]))}
        info = self._series_info
        out: list[Row] = []
        append = out.append
        if rollups:
            for rid, sid, ts, value in rows:
                append(Row(rid, sid, ts, value, info.get(sid) or self.series_info(sid),
                           rollups.get(rid)))
        else:
            for rid, sid, ts, value in rows:
                append(Row(rid, sid, ts, value, info.get(sid) or self.series_info(sid)))
        return out

    def confirm(self, sink: str, upto_id: int) -> None:
        """Everything up to `upto_id` is done for this sink (delivered or dead-lettered)."""
        with self.conn:
            self.conn.execute("UPDATE cursors SET last_id = max(last_id, ?), updated = ? "
                              "WHERE sink = ?", (upto_id, self.clock.now(), sink))

    def dead_letter(self, sink: str, rows: Sequence[Row], reason: str) -> None:
        """Keep readings a sink refused for good, so nothing is silently lost."""
        self.record(sink, {reason: list(rows)}, {}, None)

    def count_loss(self, reason: str, sink: str, n: int, priority: str = "") -> None:
        """Record readings given up on purpose (by reason), so status can show them."""
        if n:
            with self.conn:
                add_loss(self.conn, reason, sink, n, priority)

    def record(self, sink: str, dead: dict[str, list[Row]], dropped: dict[str, int],
               upto_id: int | None) -> None:
        """A sink's outcome in one transaction: refused rows kept in dead_letters,
        readings dropped by policy counted, and the cursor moved to `upto_id`."""
        now = self.clock.now()
        with transaction(self.conn):
            for reason, rows in dead.items():
                self.conn.executemany(
                    "INSERT INTO dead_letters (sink, reason, at, series, ts, value, samples) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(sink, reason, now, r.series, r.ts_ms, r.value, r.samples) for r in rows])
                by_priority: dict[str, int] = {}
                for r in rows:
                    by_priority[r.info.priority] = by_priority.get(r.info.priority, 0) + r.samples
                for priority, n in by_priority.items():
                    add_loss(self.conn, reason, sink, n, priority)
            for reason, n in dropped.items():
                if n:
                    add_loss(self.conn, reason, sink, n)
            if upto_id is not None:
                self.conn.execute("UPDATE cursors SET last_id = max(last_id, ?), updated = ? "
                                  "WHERE sink = ?", (upto_id, now, sink))

    # -- housekeeping and inspection -----------------------------------------------------

    def purge(self, at_least: int = 1) -> int:
        """Delete rows every sink has confirmed, if about `at_least` of them are (ids, not
        rows, are counted: a cheap guess). Returns rows deleted."""
        (low,) = self.conn.execute("SELECT min(last_id) FROM cursors").fetchone()
        if low is None:
            return 0
        first = self.conn.execute(merged("r.id") + " ORDER BY id LIMIT 1").fetchone()
        if first is None or low - first[0] + 1 < at_least:
            return 0
        self.flush()  # what only the deleted rows knew (last timestamps, the last id)
        deleted = 0
        for table in [*READINGS.values(), "rollups"]:
            while True:
                with self.conn:
                    cur = self.conn.execute(
                        f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "
                        "WHERE id <= ? ORDER BY id LIMIT ?)", (low, _PURGE_CHUNK))
                if table != "rollups":
                    deleted += cur.rowcount
                if cur.rowcount < _PURGE_CHUNK:
                    break
        return deleted

    def backlogs(self, positions: dict[str, int | None] | None = None,
                 reshaped: int | None = None) -> list[Backlog]:
        """Rows waiting for each sink, after its saved cursor or, for a running gateway,
        the position its forwarder has reached (`positions`, newer than the saved one).

        Counting every waiting row each time costs seconds of CPU on a Pi with a
        gigabyte of backlog, so with `reshaped` (how many times housekeeping has
        deleted or folded stored rows: `InFlight.reshaped`) the count is kept
        running: the rows the sink has moved past are taken off, the rows committed
        since are added, each a count over a short range of ids. When housekeeping
        has reshaped the store since, everything is counted again.
        """
        out = []
        top = highest_id(self.conn)
        steady = reshaped is not None and reshaped % 2 == 0  # odd: housekeeping at work
        for sink, saved in self.conn.execute("SELECT sink, last_id FROM cursors "
                                             "ORDER BY sink").fetchall():
            last_id = int(max(saved, (positions or {}).get(sink) or saved))
            known = self._counted.get(sink) if steady else None
            if known is not None and known[3] == reshaped and last_id >= known[0]:
                before, seen_top, n, _ = known
                if last_id >= seen_top:
                    n = self._count(last_id, top)
                else:
                    n = n - self._count(before, last_id) + self._count(seen_top, top)
            else:
                n = self._count(last_id, top)
            if steady:
                self._counted[sink] = (last_id, top, n, reshaped)  # type: ignore[arg-type]
            row = self.conn.execute(_FIRST_TS, (last_id,) * len(READINGS)).fetchone()
            out.append(Backlog(sink, n, row[1] / 1000.0 if row else None, last_id))
        return out

    def _count(self, after: int, upto: int) -> int:
        """Stored rows with after < id <= upto."""
        return sum(self.conn.execute(f"SELECT count(*) FROM {table} WHERE id > ? AND id <= ?",
                                     (after, upto)).fetchone()[0]
                   for table in READINGS.values())

    def losses(self) -> dict[tuple[str, str], int]:
        """Readings given up, by (reason, sink), all priorities together."""
        return {(r, s): int(c) for r, s, c in self.conn.execute(
            "SELECT reason, sink, sum(count) FROM losses GROUP BY reason, sink")}

    def losses_by_priority(self) -> dict[tuple[str, str, str], int]:
        """Readings given up, by (reason, sink, priority); priority '' when not known."""
        return {(r, s, p): int(c) for r, s, p, c in
                self.conn.execute("SELECT reason, sink, priority, count FROM losses")}

    def dead_letter_counts(self) -> dict[tuple[str, str], int]:
        return {(s, r): int(c) for s, r, c in self.conn.execute(
            "SELECT sink, reason, count(*) FROM dead_letters GROUP BY sink, reason")}

    def stored_rows(self) -> int:
        n = 0
        for table in READINGS.values():
            (k,) = self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            n += k
        return int(n)

    def tallies(self) -> dict[tuple[str, str], int]:
        """The store's own counts by (name, priority): compaction's work, evicted dead letters."""
        return {(n, p): int(c) for n, p, c in
                self.conn.execute("SELECT name, priority, count FROM tallies")}

    def events(self, limit: int = 20) -> list[tuple[float, str, str]]:
        """The newest store events (recovery from corruption...), newest first."""
        return [(float(a), k, d) for a, k, d in self.conn.execute(
            "SELECT at, kind, detail FROM events ORDER BY id DESC LIMIT ?", (limit,))]
