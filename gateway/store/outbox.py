"""The durable outbox: readings wait here until every sink has confirmed them.

One `Outbox` per thread that uses it (each has its own SQLite connection);
WAL lets the ingest thread write while forwarders read.

- `append()` + `commit()`: the ingest stage's group commit. A reading is
  *accepted* when `commit()` returns.
- `fetch()` / `confirm()`: a sink's cursor walks forward over row ids.
- `purge()`: deletes rows every registered sink has confirmed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.model import Reading
from gateway.store.schema import connect, ensure_schema

DB_NAME = "gateway.db"
_PURGE_CHUNK = 50000


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    metric: str
    type: str
    unit: str
    priority: str
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class Row:
    """A stored reading with its row id (what a sink's cursor counts).

    `series` identifies metric + tags + unit + type + priority, so sinks can
    cache what they make of a series; `ts_ms` is unique per series.
    """

    id: int
    series: int
    ts_ms: int
    value: float
    info: SeriesInfo

    @property
    def ts(self) -> float:
        return self.ts_ms / 1000.0

    @property
    def reading(self) -> Reading:
        i = self.info
        return Reading(i.metric, self.value, self.ts, i.type, i.unit, i.tags,  # type: ignore[arg-type]
                       i.priority)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Backlog:
    sink: str
    rows: int
    oldest_ts: float | None
    last_id: int

    def age(self, now: float) -> float:
        """Seconds the oldest unsent reading has waited (0 with nothing waiting)."""
        return max(0.0, now - self.oldest_ts) if self.oldest_ts is not None else 0.0


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
        # Decoders hand out one tags dict per device for most readings: finding the
        # series by that dict's identity saves sorting the tags for every reading.
        # The dict is kept in the entry, so its id cannot be reused while cached.
        self._by_identity: dict[tuple[str, str, str, str, int],
                                tuple[dict[str, str], int]] = {}
        self._last_ts: dict[int, int] = {}
        self._touched: dict[int, int] = {}  # series -> last ts written in this transaction
        self._in_tx = False
        self._pending = 0

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
        self.conn.execute("INSERT OR IGNORE INTO series (metric, type, unit, priority, tags) "
                          "VALUES (?, ?, ?, ?, ?)", params)
        sid, last_ts = self.conn.execute(
            "SELECT id, last_ts FROM series WHERE metric = ? AND type = ? AND unit = ? AND "
            "priority = ? AND tags = ?", params).fetchone()
        self._series_ids[key] = sid
        if last_ts and self._last_ts.get(sid, 0) < last_ts:
            self._last_ts[sid] = last_ts
        return sid

    def append(self, readings: Iterable[Reading]) -> int:
        """Add readings to the open transaction (begun if needed). Not durable until commit.

        Timestamps are kept unique per series at millisecond resolution: InfluxDB
        and VictoriaMetrics keep one point per series and timestamp, so two
        readings in one millisecond would silently become one downstream.
        """
        if not self._in_tx:
            self.conn.execute("BEGIN")
            self._in_tx = True
        rows = []
        last_ts = self._last_ts
        touched = self._touched
        by_identity = self._by_identity
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
                ts = prev + 1
            last_ts[sid] = touched[sid] = ts
            rows.append((sid, ts, r.value))
        self.conn.executemany("INSERT INTO readings (series, ts, value) VALUES (?, ?, ?)", rows)
        self._pending += len(rows)
        return len(rows)

    def commit(self) -> int:
        """Make appended readings durable. Returns how many were committed."""
        if not self._in_tx:
            return 0
        try:
            if self._touched:
                self.conn.executemany("UPDATE series SET last_ts = ? WHERE id = ?",
                                      [(ts, sid) for sid, ts in self._touched.items()])
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
        # Series rows inserted in the failed transaction are gone too.
        self._series_ids.clear()
        self._by_identity.clear()
        self._last_ts.clear()

    # -- sinks and cursors ---------------------------------------------------------------

    def register_sinks(self, names: Sequence[str]) -> list[str]:
        """Make sure each sink has a cursor; drop cursors of sinks no longer configured.

        A new sink starts at the oldest row still stored, so it receives what is
        waiting. Returns the names of sinks whose cursors were dropped.
        """
        now = time.time()
        (oldest,) = self.conn.execute("SELECT coalesce(min(id), "
                                      "(SELECT seq FROM sqlite_sequence WHERE name='readings'),"
                                      " 1) - 1 FROM readings").fetchone()
        oldest = max(int(oldest or 0), 0)
        with self.conn:
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

    def series_info(self, sid: int) -> SeriesInfo:
        info = self._series_info.get(sid)
        if info is None:
            row = self.conn.execute("SELECT metric, type, unit, priority, tags FROM series "
                                    "WHERE id = ?", (sid,)).fetchone()
            info = SeriesInfo(row[0], row[1], row[2], row[3], json.loads(row[4]))
            self._series_info[sid] = info
        return info

    def fetch(self, sink: str, limit: int, after: int | None = None) -> list[Row]:
        """The next `limit` readings after the sink's cursor (or after `after`)."""
        start = self.cursor(sink) if after is None else after
        rows = self.conn.execute("SELECT id, series, ts, value FROM readings WHERE id > ? "
                                 "ORDER BY id LIMIT ?", (start, limit)).fetchall()
        info = self._series_info
        out = []
        for rid, sid, ts, value in rows:
            si = info.get(sid) or self.series_info(sid)
            out.append(Row(rid, sid, ts, value, si))
        return out

    def confirm(self, sink: str, upto_id: int) -> None:
        """Everything up to `upto_id` is done for this sink (delivered or dead-lettered)."""
        with self.conn:
            self.conn.execute("UPDATE cursors SET last_id = max(last_id, ?), updated = ? "
                              "WHERE sink = ?", (upto_id, time.time(), sink))

    def dead_letter(self, sink: str, rows: Sequence[Row], reason: str) -> None:
        """Keep readings a sink refused for good, so nothing is silently lost."""
        if not rows:
            return
        now = time.time()
        ids = [r.id for r in rows]
        with self.conn:
            self.conn.executemany(
                "INSERT INTO dead_letters (sink, reason, at, series, ts, value) "
                "SELECT ?, ?, ?, series, ts, value FROM readings WHERE id = ?",
                [(sink, reason, now, i) for i in ids])
            self._count_loss(reason, sink, len(ids))

    def count_loss(self, reason: str, sink: str, n: int) -> None:
        """Record readings given up on purpose (by reason), so status can show them."""
        if n:
            with self.conn:
                self._count_loss(reason, sink, n)

    def _count_loss(self, reason: str, sink: str, n: int) -> None:
        self.conn.execute("INSERT INTO losses (reason, sink, count) VALUES (?, ?, ?) "
                          "ON CONFLICT (reason, sink) DO UPDATE SET count = count + ?",
                          (reason, sink, n, n))

    # -- housekeeping and inspection -----------------------------------------------------

    def purge(self) -> int:
        """Delete rows every sink has confirmed. Returns rows deleted."""
        (low,) = self.conn.execute("SELECT min(last_id) FROM cursors").fetchone()
        if low is None:
            return 0
        deleted = 0
        while True:
            with self.conn:
                cur = self.conn.execute(
                    "DELETE FROM readings WHERE id IN (SELECT id FROM readings WHERE id <= ? "
                    "ORDER BY id LIMIT ?)", (low, _PURGE_CHUNK))
            deleted += cur.rowcount
            if cur.rowcount < _PURGE_CHUNK:
                return deleted

    def backlogs(self) -> list[Backlog]:
        out = []
        for sink, last_id in self.conn.execute("SELECT sink, last_id FROM cursors "
                                               "ORDER BY sink").fetchall():
            (n,) = self.conn.execute("SELECT count(*) FROM readings WHERE id > ?",
                                     (last_id,)).fetchone()
            row = self.conn.execute("SELECT ts FROM readings WHERE id > ? ORDER BY id LIMIT 1",
                                    (last_id,)).fetchone()
            out.append(Backlog(sink, int(n), row[0] / 1000.0 if row else None, int(last_id)))
        return out

    def losses(self) -> dict[tuple[str, str], int]:
        return {(r, s): int(c) for r, s, c in
                self.conn.execute("SELECT reason, sink, count FROM losses")}

    def dead_letter_counts(self) -> dict[tuple[str, str], int]:
        return {(s, r): int(c) for s, r, c in self.conn.execute(
            "SELECT sink, reason, count(*) FROM dead_letters GROUP BY sink, reason")}

    def stored_rows(self) -> int:
        (n,) = self.conn.execute("SELECT count(*) FROM readings").fetchone()
        return int(n)
