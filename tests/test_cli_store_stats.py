"""`gateway store stats`: what the store holds, read from the file, gateway running or not."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from gateway.clock import ManualClock
from gateway.config.schema import CompactionRule
from gateway.config.validate import Duration
from gateway.model import Reading
from gateway.store.compaction import Compactor
from gateway.store.inflight import InFlight
from gateway.store.lock import StoreLock
from gateway.store.outbox import Outbox

ROOT = Path(__file__).resolve().parents[1]
SECRET = "dd-key-that-must-never-be-shown"


def store_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m gateway store <args>`, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "gateway", "store", *args],
                          env={**os.environ, "PYTHONPATH": str(ROOT), "DD_KEY": SECRET},
                          capture_output=True, text=True, timeout=60)


def write_config(tmp_path: Path) -> Path:
    config = {"gateway": {"name": "hall", "data_dir": "./data"},
              "store": {"max_bytes": "50MB", "min_free_bytes": 0},
              "sinks": [{"name": "vm", "type": "influx", "url": "http://127.0.0.1:8428"},
                        {"name": "offsite", "type": "datadog", "api_key": "${DD_KEY}"}]}
    path = tmp_path / "gateway.yaml"
    path.write_text(json.dumps(config))
    return path


def power(value: float, ts: float) -> Reading:
    return Reading("plug.power", value, ts, "gauge", "W", {"device": "kettle"}, "normal")


def defib(ts: float) -> Reading:
    return Reading("defib.power", 4.0, ts, "gauge", "W", {"device": "defib"}, "critical")


def fill(data_dir: Path, now: float) -> None:
    """600 normal readings over ten whole minutes 3 h ago (compacted into ten 1-minute
    rollups), 10 recent critical ones; sink vm has confirmed everything, offsite nothing."""
    box = Outbox(data_dir)
    box.register_sinks(["vm", "offsite"])
    start = (now - 3 * 3600) // 60 * 60
    box.append(power(float(i), start + i) for i in range(600))
    box.append(defib(now - 60 + i) for i in range(10))
    box.commit()
    rule = CompactionRule(Duration(3600), Duration(60))
    compactor = Compactor(box.conn, [rule], InFlight(), ManualClock(now))
    while compactor.step() is not None:
        pass
    rows = box.rows_after(0, 10000)
    box.dead_letter("vm", rows[-2:], "rejected_400")
    box.confirm("vm", rows[-1].id)
    box.count_loss("evicted_size", "offsite", 7, "low")
    box.close()


def test_stats_show_size_rows_rollups_backlogs_and_losses(tmp_path):
    config = write_config(tmp_path)
    fill(tmp_path / "data", time.time())
    buckets = 10

    shown = store_cli("stats", "--config", str(config))

    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith(f"store {tmp_path / 'data' / 'gateway.db'}\n")
    assert re.search(r"data: [\d.]+ kB of a 50\.0 MB budget \(0%\)", text), text
    assert "store.max_bytes 50.0 MB, store.min_free_bytes 0 bytes (from the config)" in text
    assert f"holds 610 readings in {buckets + 10} rows of 2 series" in text
    assert re.search(rf"normal\s+{buckets}\s+{buckets}\s+600\n", text), text
    assert re.search(r"critical\s+10\s+0\s+10\n", text), text
    assert f"({buckets} rollup rows, made by compaction, stand for 600 readings)" in text
    assert "    vm: nothing waiting" in text
    assert re.search(rf"offsite: {buckets + 10} rows \(610 readings\), oldest 3\.0h old",
                     text), text
    assert "evicted_size: offsite, low: 7" in text
    assert "rejected_400: vm, critical: 2" in text
    assert f"normal: 600 rows folded into {buckets} rollup rows" in text
    assert "vm, rejected_400: 2 rows" in text
    assert SECRET not in text + shown.stderr

    figures = json.loads(store_cli("stats", "--json", "--config", str(config)).stdout)
    assert figures["readings"] == 610 and figures["rows"] == buckets + 10
    assert figures["priorities"]["normal"] == {"rows": buckets, "compacted_rows": buckets,
                                               "compacted_readings": 600, "readings": 600}
    assert figures["max_bytes"] == 50_000_000 and figures["budget_from_config"] is True
    assert {s["name"]: s["backlog_readings"] for s in figures["sinks"]} == {
        "offsite": 610, "vm": 0}
    assert figures["bytes_per_reading"] > 0
    assert figures["series"] == 2


def test_stats_while_a_gateway_holds_and_writes_the_store(tmp_path):
    data = tmp_path / "data"
    lock = StoreLock(data)
    lock.acquire()  # as a running gateway does
    writer = Outbox(data)
    try:
        writer.register_sinks(["vm"])
        writer.append(power(float(i), 1_763_634_900 + i) for i in range(5))
        writer.commit()
        writer.append([power(99.0, 1_763_635_000)])  # a group commit still open

        shown = store_cli("stats", "--data-dir", str(data))
    finally:
        writer.close()
        lock.release()

    assert shown.returncode == 0, shown.stderr
    assert "holds 5 readings in 5 rows of 1 series" in shown.stdout
    assert "(defaults, as no --config was given)" in shown.stdout
    assert "vm: 5 rows, oldest" in shown.stdout


def test_stats_of_a_store_that_is_not_there_or_not_a_store(tmp_path):
    missing = store_cli("stats", "--data-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [
        f"gateway store stats: no store at {tmp_path / 'nowhere' / 'gateway.db'} (check "
        "--data-dir; the gateway makes the store when it first runs)"]

    (tmp_path / "gateway.db").write_bytes(b"these are not the pages you are looking for" * 100)
    garbage = store_cli("stats", "--data-dir", str(tmp_path))
    assert garbage.returncode == 1
    assert "Traceback" not in garbage.stderr
    assert len(garbage.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "gateway.db") in garbage.stderr
    assert "not a database" in garbage.stderr
