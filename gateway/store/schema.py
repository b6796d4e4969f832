"""The store's tables, and opening a connection with the durability asked for.

readings rows are small (series id, ms timestamp, value): a reading's metric,
unit, type, priority and tags are interned once in `series`, which also keeps
the last timestamp given to each series, so timestamps stay unique per series
across restarts (readings may be purged, the series row is not). Row ids come from
AUTOINCREMENT so an id is never reused after rows are deleted: a sink's cursor
("everything up to id N is confirmed") stays true forever.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 1

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
    UNIQUE (metric, type, unit, priority, tags)
);
CREATE TABLE IF NOT EXISTS readings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    series INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL NOT NULL
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
    value REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS losses (
    reason TEXT NOT NULL,
    sink TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (reason, sink)
);
"""

SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}


def connect(path: Path, durability: str = "full", readonly: bool = False) -> sqlite3.Connection:
    """Open the store in WAL mode. `durability` picks PRAGMA synchronous.

    WAL + FULL: each commit is fsynced; a power cut loses nothing committed.
    WAL + NORMAL: the WAL is fsynced at checkpoints only; a power cut may lose
    the last commits but never corrupts the file.
    """
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                               isolation_level=None, timeout=10)
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                           timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {SYNCHRONOUS[durability]}")
    return conn


def ensure_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(DDL)
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                 (str(SCHEMA_VERSION),))
