"""After a crash, the store gives no row id twice and no series a timestamp twice.

A commit no longer writes each series' last timestamp or the last id given (a page
each, on an SD card, every commit): they live in the writer's memory and reach the
file before any reading is deleted, every few minutes and on close. These are the
cases where that could go wrong: a crash (no close) with none of it written, and a
start whose first act is a purge of every row, before anything is appended.
"""

from __future__ import annotations

import time
from pathlib import Path

from gateway.model import Reading
from gateway.store.outbox import Outbox

TAGS = {"device": "plug"}


def readings(values: list[float], ts: float) -> list[Reading]:
    return [Reading("plug.power", v, ts, "gauge", "W", TAGS, "normal") for v in values]


def stored(box: Outbox) -> list[tuple[int, int, float]]:
    return box.conn.execute("SELECT id, ts, value FROM readings_normal ORDER BY id").fetchall()


def test_a_crash_before_any_flush_gives_no_id_or_timestamp_twice(tmp_path: Path):
    now = time.time()
    first = Outbox(tmp_path)
    first.register_sinks(["vm"])
    first.append(readings([1, 2, 3], now))  # one millisecond: stamped now, +1 ms, +2 ms
    first.commit()
    before = stored(first)
    # The process dies: no close, no flush. The next start appends in the same millisecond.
    again = Outbox(tmp_path)
    again.append(readings([4], now))
    again.commit()
    rows = stored(again)
    assert [r[2] for r in rows] == [1, 2, 3, 4]
    assert len({r[0] for r in rows}) == 4 and rows[-1][0] > before[-1][0]
    assert len({r[1] for r in rows}) == 4 and rows[-1][1] > before[-1][1]


def test_a_start_that_purges_everything_first_continues_the_ids(tmp_path: Path):
    now = time.time()
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    box.append(readings([1, 2], now))
    box.commit()
    last = stored(box)[-1]
    box.confirm("vm", last[0])  # the sink has everything
    # Restarted, the first thing done is the purge: every row goes.
    restarted = Outbox(tmp_path)
    assert restarted.purge() == 2
    assert stored(restarted) == []
    # Restarted again (a crash after the purge): new readings must come after the cursor,
    # or the sink would skip them as already sent.
    third = Outbox(tmp_path)
    third.append(readings([3], now))
    third.commit()
    (row,) = stored(third)
    assert row[0] > third.cursor("vm") == last[0]
    assert row[1] > last[1]  # and after the series' last timestamp
    assert [r.value for r in third.fetch("vm", 10)] == [3]
