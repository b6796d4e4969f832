"""The store's tables, and opening a connection with the durability asked for.

Readings rows are small (id, series id, ms timestamp, value): a reading's metric,
unit, type, priority, rollup kind and tags are interned once in `series`, which
also keeps the last timestamp given to each series, so timestamps stay unique per
series across restarts (readings may be deleted, the series row is not).

A commit writes only the readings it adds: each series' last timestamp and the
last id given live in the writer's memory and reach `series.last_ts` and
`meta.last_id` when it flushes them (every few minutes, before it deletes any
reading, and when it closes; `meta.flushed_upto` says up to which id). On open,
rows above `flushed_upto` are read for the timestamps a crash kept from the
flush. An SD card sees one page or two a commit instead of four.

Readings live in one table per priority (`readings_low` ... `readings_critical`).
SQLite frees a page only when every row on it is gone, so deleting the low
priority rows from a table that mixes priorities would free almost nothing;
with one table each, evicting the oldest low readings frees whole pages. Row
ids are one sequence across the four tables (`meta.last_id`), never reused, so a
sink's cursor ("everything up to id N is confirmed") stays true forever; a
sink reads the four tables merged in id order.

`rollups` holds what a compacted row stands for (keyed by the row's id): how
many readings, their min, max, last value and the time of the last one.

`redeliver` lists dead letters put back in their sink's queue (`gateway store
redeliver`), by dead letter id; the sink's forwarder sends them before its
cursor's rows. A store made before it existed gets it on open.
"""

from __future__ import annotations

import logging
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.model import PRIORITIES

log = logging.getLogger("gateway.store")

SCHEMA_VERSION = 2

#: table name of each priority's readings, in eviction order (first evicted first)
READINGS = {p: f"readings_{p}" for p in reversed(PRIORITIES)}
EVICTION_ORDER: tuple[str, ...] = tuple(READINGS)  # low, normal, high, critical

_READINGS_DDL = "".join(f"""
CREATE TABLE IF NOT EXISTS {table} (
    id INTEGER PRIMARY KEY,
    series INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL NOT NULL
);""" for table in READINGS.values())

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    metric TEXT NOT NULL,
    type TEXT NOT NULL,
    unit TEXT NOT NULL,
    priority TEXT NOT NULL,
    tags TEXT NOT NULL,
    last_ts INTEGER NOT NULL DEFAULT 0,
    rollup TEXT NOT NULL DEFAULT 'mean',
    UNIQUE (metric, type, unit, priority, tags)
);
""" + _READINGS_DDL + """
CREATE TABLE IF NOT EXISTS rollups (
    id INTEGER PRIMARY KEY,
    samples INTEGER NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    last REAL NOT NULL,
    last_ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    sink TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    sink TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    series INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL NOT NULL,
    samples INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS redeliver (
    dead_id INTEGER PRIMARY KEY,
    sink TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS losses (
    reason TEXT NOT NULL,
    sink TEXT NOT NULL,
    priority TEXT NOT NULL DEFAULT '',
    count INTEGER NOT NULL,
    PRIMARY KEY (reason, sink, priority)
);
CREATE TABLE IF NOT EXISTS tallies (
    name TEXT NOT NULL,
    priority TEXT NOT NULL DEFAULT '',
    count INTEGER NOT NULL,
    PRIMARY KEY (name, priority)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""

SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}

#: the WAL is cut back to this size after a checkpoint, so a burst does not keep its space
WAL_SIZE_LIMIT = 4 * 1024 * 1024


def connect(path: Path, durability: str = "full", readonly: bool = False) -> sqlite3.Connection:
    """Open the store in WAL mode. `durability` picks PRAGMA synchronous.

    WAL + FULL: each commit is fsynced; a power cut loses nothing committed.
    WAL + NORMAL: the WAL is fsynced at checkpoints only; a power cut may lose
    the last commits but never corrupts the file.
    """
    if readonly:
        conn = sqlite3.connect(readonly_uri(path), uri=True, check_same_thread=False,
                               isolation_level=None, timeout=10)
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                           timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    if tables == 0:
        # Only possible before the first table exists: lets the gateway hand free
        # pages back to the file system (PRAGMA incremental_vacuum) after a backlog.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[durability]}")
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
    return conn


def readonly_uri(path: Path | str) -> str:
    """A read-only SQLite URI for `path` (quoted: a folder may hold ?, # or %)."""
    return f"file:{urllib.parse.quote(str(path))}?mode=ro"


def schema_version(conn: sqlite3.Connection) -> int:
    """0 for an empty file, else the version the store was written with."""
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                            "name = 'meta'").fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Create the tables, or bring a store written by an older version up to date."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"the store was written by a newer gateway (schema {version}, this one knows "
            f"{SCHEMA_VERSION}); upgrade the gateway or move the store aside")
    if version == 1:
        _migrate_from_1(conn)
        return
    conn.executescript(DDL)
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                 (str(SCHEMA_VERSION),))
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('last_id', '0')")


def _migrate_from_1(conn: sqlite3.Connection) -> None:
    """Version 1 kept all readings in one table: split them by priority, in one transaction."""
    (rows,) = conn.execute("SELECT count(*) FROM readings").fetchone()
    log.warning("store: upgrading from schema 1 to %d (%d readings waiting); this runs once",
                SCHEMA_VERSION, rows)
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").fetchone()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("ALTER TABLE series ADD COLUMN rollup TEXT NOT NULL DEFAULT 'mean'")
        conn.execute("UPDATE series SET rollup = 'sum' WHERE type = 'count'")
        conn.execute("ALTER TABLE dead_letters ADD COLUMN samples INTEGER NOT NULL DEFAULT 1")
        conn.execute("ALTER TABLE losses RENAME TO losses_v1")
        for statement in DDL.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO losses (reason, sink, priority, count) "
                     "SELECT reason, sink, '', count FROM losses_v1")
        conn.execute("DROP TABLE losses_v1")
        for priority, table in READINGS.items():
            conn.execute(f"INSERT INTO {table} (id, series, ts, value) "
                         "SELECT r.id, r.series, r.ts, r.value FROM readings r "
                         "JOIN series s ON s.id = r.series WHERE s.priority = ? ORDER BY r.id",
                         (priority,))
        (high,) = conn.execute("SELECT coalesce(max(id), 0) FROM readings").fetchone()
        last_id = max(int(high), int(seq[0]) if seq else 0)
        conn.execute("DROP TABLE readings")
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_id', ?)",
                     (str(last_id),))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                     (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def add_loss(conn: sqlite3.Connection, reason: str, sink: str, n: int,
             priority: str = "") -> None:
    """Count `n` readings given up for `sink` (inside the caller's transaction)."""
    conn.execute("INSERT INTO losses (reason, sink, priority, count) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (reason, sink, priority) DO UPDATE SET count = count + ?",
                 (reason, sink, priority, n, n))


def add_tally(conn: sqlite3.Connection, name: str, n: int, priority: str = "") -> None:
    """Add `n` to one of the store's own counts (compaction's work, dead letters evicted)."""
    conn.execute("INSERT INTO tallies (name, priority, count) VALUES (?, ?, ?) "
                 "ON CONFLICT (name, priority) DO UPDATE SET count = count + ?",
                 (name, priority, n, n))


def highest_id(conn: sqlite3.Connection) -> int:
    """The highest row id ever given: `meta.last_id` (written before any row is deleted)
    or a stored row's, whichever is higher. The writer does not write `meta.last_id`
    with every commit: that would cost the SD card a page per commit."""
    (meta,) = conn.execute("SELECT value FROM meta WHERE key = 'last_id'").fetchone()
    highest = int(meta)
    for table in READINGS.values():
        (top,) = conn.execute(f"SELECT max(id) FROM {table}").fetchone()
        if top is not None and top > highest:
            highest = int(top)
    return highest


def merged(select: str, where: str = "") -> str:
    """One SELECT over the four readings tables, merged in id order by SQLite.

    `select` names columns of `r` (the readings row); `where` may use `r` and
    positional parameters, repeated once per table by the caller.
    """
    arms = [f"SELECT {select} FROM {table} r" + (f" WHERE {where}" if where else "")
            for table in READINGS.values()]
    return " UNION ALL ".join(arms)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error.

    Connections here are in autocommit mode (isolation_level=None), where
    `with conn:` does not begin a transaction: several statements that must
    stand or fall together go through this.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
