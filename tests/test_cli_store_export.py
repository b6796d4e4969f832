"""`gateway store export`: stored readings as the file sink's JSON lines, on stdout or to a file."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.config.schema import CompactionRule
from gateway.config.validate import Duration
from gateway.model import Reading, Row
from gateway.sinks.file_config import FileSinkConfig
from gateway.sinks.jsonlines import FileSink
from gateway.store.compaction import Compactor
from gateway.store.inflight import InFlight
from gateway.store.lock import StoreLock
from gateway.store.outbox import Outbox

ROOT = Path(__file__).resolve().parents[1]
NOW = time.time()
THREE_HOURS_AGO = (NOW - 3 * 3600) // 60 * 60  # on a minute: five whole 1-minute buckets


def store_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    """`python -m gateway store <args>`, as a user runs it (stdout kept as bytes)."""
    return subprocess.run([sys.executable, "-m", "gateway", "store", *args],
                          env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, timeout=120)


def reading(metric: str, value: float, ts: float, priority: str, device: str) -> Reading:
    return Reading(metric, value, ts, "gauge", "W", {"device": device}, priority)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """300 normal readings 3 h old, compacted into five 1-minute rollups; 20 critical ones 30 min
    old and 20 low ones 10 min old. Sink vm has confirmed half the rows, archive none."""
    data = tmp_path / "data"
    box = Outbox(data)
    box.register_sinks(["vm", "archive"])
    box.append(reading("plug.power", float(i), THREE_HOURS_AGO + i, "normal", "kettle")
               for i in range(300))
    box.append(reading("defib.power", 4.0 + i, NOW - 1800 + 10 * i, "critical", "defib")
               for i in range(20))
    box.append(reading("bulb.power", 9.0, NOW - 600 + 10 * i, "low", "bulb") for i in range(20))
    box.commit()
    compactor = Compactor(box.conn, [CompactionRule(Duration(3600), Duration(60))],
                          InFlight(), ManualClock(NOW))
    while compactor.step() is not None:
        pass
    rows = box.rows_after(0, 1000)
    box.confirm("vm", rows[len(rows) // 2].id)
    box.close()
    return data


def stored(data: Path, after: int = 0) -> list[Row]:
    box = Outbox(data, readonly=True)
    try:
        return box.rows_after(after, 100_000)
    finally:
        box.close()


def cursor(data: Path, sink: str) -> int:
    box = Outbox(data, readonly=True)
    try:
        return box.cursor(sink)
    finally:
        box.close()


def file_sink_writes(rows: list[Row], folder: Path) -> bytes:
    """What the file sink (`type: file`) writes for these rows."""
    path = folder / "sink.jsonl"
    path.unlink(missing_ok=True)  # the sink appends
    config = FileSinkConfig(name="archive", path=str(path), max_bytes=0, fsync=False)
    sink = FileSink(config, path)

    async def send() -> None:
        outcome = await sink.send(rows)
        assert outcome.done == len(rows)
        await sink.close()

    asyncio.run(send())
    return path.read_bytes()


def test_export_writes_every_stored_reading_as_the_file_sink_does(store, tmp_path):
    rows = stored(store)
    shown = store_cli("export", "--data-dir", str(store))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == file_sink_writes(rows, tmp_path)
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert len(lines) == len(rows) == 5 + 20 + 20  # the old ones are compacted
    rollups = [line["rollup"] for line in lines if "rollup" in line]
    assert [r["samples"] for r in rollups] == [60] * 5
    assert shown.stderr.decode().strip().splitlines()[-1] == \
        f"exported {len(rows)} rows (340 readings) to stdout"


def test_export_what_still_waits_for_one_sink(store, tmp_path):
    lock = StoreLock(store)
    lock.acquire()  # the gateway runs: export only reads, so it works all the same
    try:
        shown = store_cli("export", "--sink", "vm", "--data-dir", str(store))
        unknown = store_cli("export", "--sink", "datadog", "--data-dir", str(store))
    finally:
        lock.release()
    waiting = stored(store, after=cursor(store, "vm"))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == file_sink_writes(waiting, tmp_path)
    assert 0 < len(waiting) < len(stored(store))

    assert unknown.returncode == 1
    assert unknown.stdout == b""
    assert unknown.stderr.decode().strip() == (
        f"gateway store export: no sink 'datadog' in the store at {store / 'gateway.db'}; "
        "known sinks: archive, vm")


def test_export_by_reading_time(store, tmp_path):
    rows = stored(store)

    def expected(since: float = 0, until: float = float("inf")) -> bytes:
        chosen = [r for r in rows if since <= r.ts < until]
        assert chosen
        return file_sink_writes(chosen, tmp_path)

    twenty_min_ago = datetime.fromtimestamp(NOW - 1200).replace(second=0, microsecond=0)
    local = store_cli("export", "--since", twenty_min_ago.strftime("%Y-%m-%dT%H:%M"),
                      "--data-dir", str(store))  # no zone: local time
    assert local.returncode == 0, local.stderr
    assert local.stdout == expected(since=twenty_min_ago.timestamp())

    recent = store_cli("export", "--since", "45m", "--data-dir", str(store))
    assert recent.stdout == expected(since=NOW - 2700)

    hour_ago = datetime.fromtimestamp(NOW - 3600, UTC).replace(microsecond=0)
    old = store_cli("export", "--until", hour_ago.isoformat(), "--since", "2020-01-01",
                    "--data-dir", str(store))
    assert old.returncode == 0, old.stderr
    assert old.stdout == expected(until=hour_ago.timestamp())
    assert all(b'"rollup"' in line for line in old.stdout.splitlines())

    wrong = store_cli("export", "--since", "last tuesday", "--data-dir", str(store))
    assert wrong.returncode == 2
    assert b"'last tuesday': expected a time such as 2026-11-20T10:00" in wrong.stderr


def test_export_to_a_file(store, tmp_path):
    target = tmp_path / "backlog.jsonl"
    shown = store_cli("export", "--output", str(target), "--data-dir", str(store))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == b""
    assert target.read_bytes() == file_sink_writes(stored(store), tmp_path)
    assert f"to {target}" in shown.stderr.decode()

    nowhere = tmp_path / "no-such-folder" / "backlog.jsonl"
    failed = store_cli("export", "--output", str(nowhere), "--data-dir", str(store))
    assert failed.returncode == 1
    assert failed.stderr.decode().strip() == \
        f"gateway store export: cannot write {nowhere}: No such file or directory"


def test_export_into_a_pipe_closed_early_ends_quietly(tmp_path):
    box = Outbox(tmp_path)
    box.append(reading("plug.power", float(i), NOW - 3600 + i / 10, "normal", "kettle")
               for i in range(30000))
    box.commit()
    box.close()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "store", "export",
                             "--data-dir", str(tmp_path)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())  # `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 0
    assert first["metric"] == "plug.power" and first["value"] == 0.0
    assert "Traceback" not in err and "Broken pipe" not in err
