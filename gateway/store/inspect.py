"""Looking into a store from outside the gateway: its figures, and its rows for export.

Everything here reads through a read-only connection (`open_readonly`), so it
works whether the gateway runs or not and never changes the file. Used by
`gateway store stats` and `gateway store export`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gateway.clock import SYSTEM
from gateway.model import Rollup, Row
from gateway.store.bounds import measure
from gateway.store.outbox import DB_NAME, Outbox
from gateway.store.schema import READINGS, SCHEMA_VERSION, highest_id, merged, schema_version

EXPORT_CHUNK = 2000


class StoreUnreadable(Exception):
    """The store cannot be opened or read; the message names the path and what to do."""


def open_readonly(data_dir: Path) -> Outbox:
    """The store in `data_dir`, opened read-only, or StoreUnreadable saying why not."""
    path = Path(data_dir) / DB_NAME
    if not Path(data_dir).is_dir():
        raise StoreUnreadable(f"no store at {path}: the folder {data_dir} does not exist "
                              "(check --config or --data-dir; the gateway makes the store "
                              "when it first runs)")
    if not path.is_file():
        raise StoreUnreadable(f"no store at {path} (check --config or --data-dir; the "
                              "gateway makes the store when it first runs)")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise StoreUnreadable(f"cannot read the store {path}: {exc.strerror or exc}") from None
    try:
        outbox = Outbox(data_dir, readonly=True)
    except sqlite3.Error as exc:
        raise StoreUnreadable(f"cannot open the store {path}: {exc}") from None
    try:
        version = schema_version(outbox.conn)
    except sqlite3.Error as exc:
        outbox.close()
        raise StoreUnreadable(f"cannot read the store {path}: {exc} (see `gateway store "
                              "check`)") from None
    if version != SCHEMA_VERSION:
        outbox.close()
        if version == 0:
            raise StoreUnreadable(f"{path} holds no gateway store (no tables of the gateway)")
        if version < SCHEMA_VERSION:
            raise StoreUnreadable(f"the store {path} was written by an older gateway (schema "
                                  f"{version}); start the gateway once to bring it up to date")
        raise StoreUnreadable(f"the store {path} was written by a newer gateway (schema "
                              f"{version}; this one knows {SCHEMA_VERSION}); upgrade the "
                              "gateway")
    return outbox


# -- stats ------------------------------------------------------------------------------


@dataclass
class PriorityFigures:
    """One priority's table: rows stored, how many are rollups, and the readings all hold."""

    rows: int = 0
    compacted_rows: int = 0
    compacted_readings: int = 0  # readings the compacted rows stand for

    @property
    def readings(self) -> int:
        return self.rows - self.compacted_rows + self.compacted_readings


@dataclass
class SinkFigures:
    """What still waits for one sink: rows and readings after its cursor, and the oldest."""

    name: str
    cursor: int
    backlog_rows: int
    backlog_readings: int
    oldest_ts: float | None
    oldest_age: float


@dataclass
class StoreStats:
    """What a store holds, against its budget. Sizes in bytes, times in UTC seconds."""

    path: str
    file_bytes: int  # the database file, free pages included
    wal_bytes: int
    free_bytes: int  # free pages inside the file (reused before the file grows)
    data_bytes: int  # pages holding data, plus the WAL: what counts against the budget
    budget_bytes: int
    max_bytes: int
    min_free_bytes: int
    fs_free_bytes: int
    page_size: int
    auto_vacuum: str
    series: int
    priorities: dict[str, PriorityFigures]
    sinks: list[SinkFigures]
    losses: list[dict[str, Any]]  # reason, sink, priority, count
    tallies: list[dict[str, Any]]  # name, priority, count
    dead_letters: list[dict[str, Any]]  # sink, reason, rows, readings
    events: list[dict[str, Any]]  # at, kind, detail (parsed when JSON)
    events_total: int = 0
    taken_at: float = field(default_factory=SYSTEM.now)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.priorities.values())

    @property
    def readings(self) -> int:
        return sum(p.readings for p in self.priorities.values())

    @property
    def bytes_per_row(self) -> float | None:
        stored = self.file_bytes - self.free_bytes
        return stored / self.rows if self.rows else None

    @property
    def bytes_per_reading(self) -> float | None:
        stored = self.file_bytes - self.free_bytes
        return stored / self.readings if self.readings else None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["priorities"] = {p: {**asdict(f), "readings": f.readings}
                             for p, f in self.priorities.items()}
        out.update(rows=self.rows, readings=self.readings, bytes_per_row=self.bytes_per_row,
                   bytes_per_reading=self.bytes_per_reading)
        return out


_AUTO_VACUUM = {0: "none", 1: "full", 2: "incremental"}


def store_stats(outbox: Outbox, max_bytes: int, min_free_bytes: int,
                now: float | None = None, events: int = 20) -> StoreStats:
    """The figures of `gateway store stats`, read in one read transaction (one snapshot)."""
    now = SYSTEM.now() if now is None else now
    conn = outbox.conn
    space = measure(conn, outbox.path, max_bytes, min_free_bytes)
    conn.execute("BEGIN")  # deferred: a consistent snapshot, no lock on writers
    try:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (auto_vacuum,) = conn.execute("PRAGMA auto_vacuum").fetchone()
        (series,) = conn.execute("SELECT count(*) FROM series").fetchone()
        priorities = {}
        for priority, table in READINGS.items():
            (rows,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            compacted, samples = conn.execute(
                f"SELECT count(*), coalesce(sum(u.samples), 0) FROM {table} r "
                "JOIN rollups u ON u.id = r.id").fetchone()
            priorities[priority] = PriorityFigures(int(rows), int(compacted), int(samples))
        sinks = [_sink_figures(conn, b.sink, b.last_id, b.rows, b.oldest_ts, b.age(now))
                 for b in outbox.backlogs()]
        losses = [{"reason": r, "sink": s, "priority": p, "count": n}
                  for (r, s, p), n in sorted(outbox.losses_by_priority().items())]
        tallies = [{"name": n, "priority": p, "count": c}
                   for (n, p), c in sorted(outbox.tallies().items())]
        dead = [{"sink": s, "reason": r, "rows": int(n), "readings": int(k)}
                for s, r, n, k in conn.execute(
                    "SELECT sink, reason, count(*), sum(samples) FROM dead_letters "
                    "GROUP BY sink, reason ORDER BY sink, reason")]
        (events_total,) = conn.execute("SELECT count(*) FROM events").fetchone()
        recent = [{"at": at, "kind": kind, "detail": _parsed(detail)}
                  for at, kind, detail in outbox.events(events)]
    finally:
        conn.execute("COMMIT")
    return StoreStats(
        path=str(outbox.path), file_bytes=space.file, wal_bytes=space.wal,
        free_bytes=space.free_pages, data_bytes=space.used, budget_bytes=space.budget,
        max_bytes=max_bytes, min_free_bytes=min_free_bytes, fs_free_bytes=space.fs_free,
        page_size=int(page_size), auto_vacuum=_AUTO_VACUUM.get(int(auto_vacuum), "?"),
        series=int(series), priorities=priorities, sinks=sinks, losses=losses,
        tallies=tallies, dead_letters=dead, events=recent, events_total=int(events_total),
        taken_at=now)


def _sink_figures(conn: sqlite3.Connection, sink: str, cursor: int, rows: int,
                  oldest_ts: float | None, age: float) -> SinkFigures:
    # A compacted row stands for `samples` readings: the backlog in readings adds the rest.
    (extra,) = conn.execute("SELECT coalesce(sum(samples - 1), 0) FROM rollups WHERE id > ?",
                            (cursor,)).fetchone()
    return SinkFigures(sink, cursor, rows, rows + int(extra), oldest_ts, age)


def _parsed(detail: str) -> Any:
    try:
        return json.loads(detail)
    except ValueError:
        return detail


# -- export -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which rows to export: ids in (after, upto], reading times in [since, until) (ms)."""

    after: int = 0
    upto: int | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def where(self, after: int | None = None) -> tuple[str, tuple[int, ...]]:
        """A WHERE clause on `r` for one readings table, and its parameters; `after`
        (default: the selection's) is where a chunked read has got to."""
        clauses, params = ["r.id > ?"], [self.after if after is None else after]
        for clause, value in (("r.id <= ?", self.upto), ("r.ts >= ?", self.since_ms),
                              ("r.ts < ?", self.until_ms)):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        return " AND ".join(clauses), tuple(params)


def last_id(outbox: Outbox) -> int:
    """The highest row id given so far: an export stops there, so it ends while ingest runs."""
    return highest_id(outbox.conn)


def count_rows(outbox: Outbox, selection: Selection) -> int:
    """How many stored rows the selection holds."""
    where, params = selection.where()
    total = 0
    for table in READINGS.values():
        (n,) = outbox.conn.execute(f"SELECT count(*) FROM {table} r WHERE {where}",
                                   params).fetchone()
        total += int(n)
    return total


def export_rows(outbox: Outbox, selection: Selection,
                chunk: int = EXPORT_CHUNK) -> Iterator[Row]:
    """The selected rows in id order, rollups attached, read a chunk at a time.

    The selection is applied by SQLite, so rows outside it cost a scan, not a
    decode. Each chunk is its own short read, so a long export never holds back
    the running gateway's checkpoints. The price: a row compacted by the gateway
    while the export runs may appear both as its readings and as their rollup.
    """
    where, _ = selection.where()
    query = merged("r.id, r.series, r.ts, r.value", where) + " ORDER BY id LIMIT ?"
    pos = selection.after
    while True:
        _, params = selection.where(after=pos)
        found = outbox.conn.execute(query, params * len(READINGS) + (chunk,)).fetchall()
        if not found:
            return
        rollups = {rid: Rollup(n, lo, hi, last, last_ts) for rid, n, lo, hi, last, last_ts in
                   outbox.conn.execute("SELECT id, samples, min, max, last, last_ts FROM rollups "
                                       "WHERE id > ? AND id <= ?", (pos, found[-1][0]))}
        for rid, sid, ts, value in found:
            yield Row(rid, sid, ts, value, outbox.series_info(sid), rollups.get(rid))
        pos = found[-1][0]
