"""A store written by the first version (one readings table) is upgraded in place on
open: every waiting reading, each sink's place and every count survive."""

import sqlite3
from pathlib import Path

from gateway.store.outbox import DB_NAME, Outbox

# The first version's tables, as it created them.
V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE series (id INTEGER PRIMARY KEY, metric TEXT NOT NULL, type TEXT NOT NULL,
    unit TEXT NOT NULL, priority TEXT NOT NULL, tags TEXT NOT NULL,
    last_ts INTEGER NOT NULL DEFAULT 0, UNIQUE (metric, type, unit, priority, tags));
CREATE TABLE readings (id INTEGER PRIMARY KEY AUTOINCREMENT, series INTEGER NOT NULL,
    ts INTEGER NOT NULL, value REAL NOT NULL);
CREATE TABLE cursors (sink TEXT PRIMARY KEY, last_id INTEGER NOT NULL, updated REAL NOT NULL);
CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, sink TEXT NOT NULL, reason TEXT NOT NULL,
    at REAL NOT NULL, series INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL);
CREATE TABLE losses (reason TEXT NOT NULL, sink TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (reason, sink));
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO series VALUES (1, 'plug.power', 'gauge', 'W', 'critical', '{"device":"defib"}', 0);
INSERT INTO series VALUES (2, 'light.state', 'gauge', '', 'low', '{"device":"bulb"}', 0);
INSERT INTO series VALUES (3, 'door.opened', 'count', '', 'normal', '{"device":"door"}', 0);
INSERT INTO cursors VALUES ('vm', 2, 0);
INSERT INTO losses VALUES ('too_old', 'dd', 7);
INSERT INTO dead_letters VALUES (1, 'dd', 'too_old', 0, 1, 1000, 5.0);
"""


def v1_store(folder: Path) -> None:
    conn = sqlite3.connect(folder / DB_NAME)
    conn.executescript(V1)
    for i in range(1, 8):
        conn.execute("INSERT INTO readings (series, ts, value) VALUES (?, ?, ?)",
                     (1 + i % 3, 1_790_000_000_000 + i, float(i)))
    conn.execute("DELETE FROM readings WHERE id <= 1")  # purged: ids never come back
    conn.commit()
    conn.close()


def test_a_first_version_store_is_upgraded_with_nothing_lost(tmp_path: Path):
    v1_store(tmp_path)
    box = Outbox(tmp_path)
    box.register_sinks(["vm", "dd"])
    assert box.cursor("vm") == 2
    rows = box.fetch("vm", 100)
    assert [(r.id, r.value, r.info.priority) for r in rows] == [
        (3, 3.0, "critical"), (4, 4.0, "low"), (5, 5.0, "normal"), (6, 6.0, "critical"),
        (7, 7.0, "low")]
    assert [r.info.rollup for r in rows[:3]] == ["mean", "mean", "sum"]
    assert box.losses() == {("too_old", "dd"): 7}
    assert box.dead_letter_counts() == {("dd", "too_old"): 1}
    # new readings continue the old id sequence
    from gateway.model import Reading

    box.append([Reading("plug.power", 8.0, 1_790_000_001.0, "gauge", "W", {"device": "defib"},
                        "critical")])
    box.commit()
    assert box.fetch("vm", 100)[-1].id == 8


def test_the_upgrade_happens_once(tmp_path: Path):
    v1_store(tmp_path)
    Outbox(tmp_path).close()
    again = Outbox(tmp_path)
    again.register_sinks(["vm"])
    assert len(again.fetch("vm", 100)) == 5
