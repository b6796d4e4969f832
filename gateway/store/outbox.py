"""The durable outbox: readings wait here until every sink has confirmed them.

One `Outbox` per thread that uses it (each has its own SQLite connection);
WAL lets the ingest thread write while forwarders read.

- `append()` + `commit()`: the ingest stage's group commit. A reading is
  *accepted* when `commit()` returns.
- `fetch()` / `confirm()`: a sink's cursor walks forward over row ids.
- `purge()`: deletes rows every registered sink has confirmed.

Bounds, compaction and eviction (`gateway.store.housekeeping`) work on the same
tables through their own connection.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.model import Reading, rollup_kind
from gateway.store.schema import (
    READINGS,
    add_loss,
    connect,
    ensure_schema,
    merged,
    transaction,
)

DB_NAME = "gateway.db"
_PURGE_CHUNK = 50000


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    metric: str
    type: str
    unit: str
    priority: str
    tags: dict[str, str]
    rollup: str = "mean"


@dataclass(frozen=True, slots=True)
class Rollup:
    """What a compacted row stands for: `samples` readings from its `ts` to `last_ts_ms`.

    The row's own value is the mean (levels), the last value (running totals) or
    the sum (counts) of those readings, by its series' rollup kind.
    """

    samples: int
    min: float
    max: float
    last: float
    last_ts_ms: int

    @property
    def last_ts(self) -> float:
        return self.last_ts_ms / 1000.0

    def as_dict(self) -> dict[str, float | int]:
        return {"samples": self.samples, "min": self.min, "max": self.max, "last": self.last,
                "until": self.last_ts}

    def companions(self, kind: str) -> list[tuple[str, float]]:
        """Extra values a sink sends beside the row's value, as (name suffix, value).

        A mean gets min, max and last; a running total min and max (its value is
        the last); a count only how many readings it sums; a folded state only
        how many reports it stands for.
        """
        if kind == "mean":
            return [("min", self.min), ("max", self.max), ("last", self.last),
                    ("samples", float(self.samples))]
        if kind == "last":
            return [("min", self.min), ("max", self.max), ("samples", float(self.samples))]
        return [("samples", float(self.samples))]


@dataclass(slots=True)
class Row:
    """A stored reading with its row id (what a sink's cursor counts).

    `series` identifies metric + tags + unit + type + priority, so sinks can
    cache what they make of a series; `ts_ms` is unique per series. A row made
    by compaction carries its `rollup`; `samples` is how many readings it holds.
    Not frozen: a frozen dataclass's __init__ costs twice as much, and a sink reads
    a million of these a minute while draining. Treat it as read-only.
    """

    id: int
    series: int
    ts_ms: int
    value: float
    info: SeriesInfo
    rollup: Rollup | None = None

    @property
    def ts(self) -> float:
        return self.ts_ms / 1000.0

    @property
    def samples(self) -> int:
        return self.rollup.samples if self.rollup is not None else 1

    @property
    def reading(self) -> Reading:
        i = self.info
        return Reading(i.metric, self.value, self.ts, i.type, i.unit, i.tags,  # type: ignore[arg-type]
                       i.priority, i.rollup)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        """The reading as JSON sinks write it, with `rollup` on compacted rows."""
        out = self.reading.as_dict()
        if self.rollup is not None:
            out["rollup"] = self.rollup.as_dict()
        return out


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
                 readonly: bool = False) -> None:
        self.path = Path(data_dir) / DB_NAME
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
        self._touched: dict[int, int] = {}  # series -> last ts written in this transaction
        self._in_tx = False
        self._pending = 0
        self._next_id = 0
        #: readings stamped later than they arrived by over a second, to keep each
        #: series in order after the clock stepped back (the caller reads and resets)
        self.shifted = 0
        self.max_shift_ms = 0

    def close(self) -> None:
        self.conn.close()

    # -- writing (the ingest thread) -------------------------------------------------

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
            # IMMEDIATE: the id sequence is read and advanced under the write lock.
            self.conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            (last,) = self.conn.execute("SELECT value FROM meta WHERE key = 'last_id'").fetchone()
            self._next_id = int(last) + 1
        by_table: dict[str, list[tuple[int, int, int, float]]] = {}
        last_ts = self._last_ts
        touched = self._touched
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
            last_ts[sid] = touched[sid] = ts
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
            if self._touched:
                self.conn.executemany("UPDATE series SET last_ts = ? WHERE id = ?",
                                      [(ts, sid) for sid, ts in self._touched.items()])
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'last_id'",
                              (str(self._next_id - 1),))
            self.conn.execute("COMMIT")
        except sqlite3.Error:
            self.rollback()
            raise
        self._in_tx = False
        self._touched.clear()
        done, self._pending = self._pending, 0
        return done

    def rollback(self) -> None:
        if self._in_tx:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        self._in_tx = False
        self._pending = 0
        self._touched.clear()
        self.shifted = 0
        self.max_shift_ms = 0
        # Series rows inserted in the failed transaction are gone too.
        self._series_ids.clear()
        self._series_table.clear()
        self._by_identity.clear()
        self._last_ts.clear()

    # -- sinks and cursors ---------------------------------------------------------------

    def register_sinks(self, names: Sequence[str]) -> list[str]:
        """Make sure each sink has a cursor; drop cursors of sinks no longer configured.

        A new sink starts at the oldest row still stored, so it receives what is
        waiting. Returns the names of sinks whose cursors were dropped.
        """
        now = time.time()
        first = self.conn.execute(merged("r.id") + " ORDER BY id LIMIT 1").fetchone()
        if first is not None:
            oldest = int(first[0]) - 1
        else:
            (last,) = self.conn.execute("SELECT value FROM meta WHERE key = 'last_id'").fetchone()
            oldest = int(last)
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
                              "WHERE sink = ?", (upto_id, time.time(), sink))

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
        now = time.time()
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

    def purge(self) -> int:
        """Delete rows every sink has confirmed. Returns rows deleted."""
        (low,) = self.conn.execute("SELECT min(last_id) FROM cursors").fetchone()
        if low is None:
            return 0
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

    def backlogs(self) -> list[Backlog]:
        out = []
        for sink, last_id in self.conn.execute("SELECT sink, last_id FROM cursors "
                                               "ORDER BY sink").fetchall():
            n = 0
            for table in READINGS.values():
                (k,) = self.conn.execute(f"SELECT count(*) FROM {table} WHERE id > ?",
                                         (last_id,)).fetchone()
                n += k
            row = self.conn.execute(_FIRST_TS, (last_id,) * len(READINGS)).fetchone()
            out.append(Backlog(sink, int(n), row[1] / 1000.0 if row else None, int(last_id)))
        return out

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
