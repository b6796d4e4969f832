"""One clock: every part that depends on time asks the gateway's `Clock`.

So a test can step time across a window or a daylight-saving change and see
what the real code does, and `gateway.timezone` is the zone schedules use.
"""

from __future__ import annotations

import ast
import json
import logging
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.app.gateway import Gateway
from gateway.clock import Clock, ManualClock
from gateway.config.load import parse_config
from gateway.ingest.logthrottle import Throttled

ROOT = Path(__file__).resolve().parents[1] / "gateway"
#: the clock itself, and the simulated hall of `gateway demo`, which keeps its own time
EXEMPT = {"clock.py", "demo"}
DIRECT = {("time", "time"), ("time", "monotonic"), ("time", "sleep"), ("asyncio", "sleep"),
          ("datetime", "now"), ("datetime", "utcnow")}


def direct_time_calls(root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name in EXEMPT or path.relative_to(root).parts[0] in EXEMPT:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
                if (name, node.func.attr) in DIRECT:
                    found.append(f"{path.relative_to(root)}:{node.lineno} "
                                 f"{name}.{node.func.attr}()")
            # time.time passed as a default or a callback is the same thing, later
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and (node.value.id, node.attr) in {("time", "time"),
                                                       ("time", "monotonic")}):
                found.append(f"{path.relative_to(root)}:{node.lineno} "
                             f"{node.value.id}.{node.attr}")
    return sorted(set(found))


def test_no_part_reads_the_time_behind_the_clocks_back():
    assert direct_time_calls() == []


def test_the_check_finds_a_direct_call(tmp_path):
    (tmp_path / "sneaky.py").write_text("import time\n\ndef f():\n    return time.time()\n")
    assert direct_time_calls(tmp_path) == ["sneaky.py:4 time.time", "sneaky.py:4 time.time()"]


def test_the_gateway_clock_is_in_the_configured_zone(tmp_path):
    config = parse_config(json.dumps({
        "gateway": {"name": "hall", "timezone": "Europe/London",
                    "data_dir": str(tmp_path / "data"), "http": {"enabled": False}},
        "mqtt": {"host": "127.0.0.1", "port": 1883}}), str(tmp_path / "gateway.yaml"))
    clock = Gateway(config, tmp_path).clock
    assert clock.timezone == "Europe/London"
    # 1 July 12:00 UTC is 13:00 in London (summer time)
    assert clock.local(datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("UTC")).timestamp()).hour == 13


def test_a_manual_clock_steps_across_the_end_of_summer_time():
    # 25 October 2026, 00:30 UTC = 01:30 BST; an hour later it is 01:30 GMT again.
    start = datetime(2026, 10, 25, 0, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    clock = ManualClock(start, "Europe/London")
    before = clock.local()
    clock.advance(3600)
    after = clock.local()
    assert (before.hour, before.minute, after.hour, after.minute) == (1, 30, 1, 30)
    assert before.utcoffset() != after.utcoffset()
    assert clock.now() - start == 3600 and isinstance(clock, Clock)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_held_back_warnings_follow_the_clock_they_are_given(caplog):
    clock = ManualClock(1_800_000_000.0)
    throttle = Throttled(logging.getLogger("gateway.test"), 60.0, clock.monotonic)
    with caplog.at_level(logging.WARNING, logger="gateway.test"):
        throttle.log(logging.WARNING, "k", "first")
        throttle.log(logging.WARNING, "k", "second")
        assert throttle.flush() == 0 and throttle.due_in() == 60.0
        clock.advance(60)
        assert throttle.flush() == 1
    assert caplog.messages[-1] == "1 more like this in the last 60s, the last: second"
