"""The file sink (`type: file`): readings as JSON lines in a local file, rotated by size.

End to end, Tasmota messages go through a real Mosquitto and a gateway process
into the file: every reading arrives as one whole JSON line, rotation keeps
lines whole and files within `max_bytes`, and a file that cannot be written
keeps the readings in the store (shown by `gateway status`) until it can.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from gateway.clock import SYSTEM
from gateway.config.load import parse_config
from gateway.config.validate import ConfigError
from gateway.model import Row, SeriesInfo
from gateway.sinks.base import SinkContext
from gateway.sinks.jsonlines import FileSink
from gateway.sinks.registry import make_sink

# The payloads below carry one fixed Time, not a clock: stamped on receipt.
DEVICE = {"id": "defib-socket", "profile": "tasmota", "topic": "defib_socket",
          "priority": "critical", "tags": {"room": "entrance"}, "time": "receive"}
TAGS = {"device": "defib-socket", "gateway": "hall", "site": "kilnwick", "room": "entrance"}


def sensor(n: int) -> str:
    """Tasmota `tele/<topic>/SENSOR` of an energy-monitoring plug; message n carries power n."""
    return json.dumps({"Time": "2026-11-20T10:15:00", "ENERGY": {
        "TotalStartTime": "2025-01-04T09:12:44", "Total": n / 100, "Yesterday": 1.203,
        "Today": 0.521, "Power": n, "Voltage": 220 + n % 20, "Current": n / 1000}})


def expected(n: int) -> list[tuple]:
    """What sensor(n) must become (from Tasmota's documented ENERGY block)."""
    return [key(m, v, u, TAGS) for m, v, u in (
        ("plug.power", n, "W"), ("plug.voltage", 220 + n % 20, "V"),
        ("plug.current", n / 1000, "A"), ("plug.energy_total", n / 100, "kWh"),
        ("plug.energy_today", 0.521, "kWh"), ("plug.energy_yesterday", 1.203, "kWh"))]


def key(metric: str, value: float, unit: str | None, tags: dict, type: str = "gauge",
        priority: str = "critical") -> tuple:
    return metric, round(float(value), 6), unit, type, frozenset(tags.items()), priority


def key_of(line: dict) -> tuple:
    return key(line["metric"], line["value"], line.get("unit"), line["tags"], line["type"],
               line["priority"])


def read_lines(path: Path) -> list[dict]:
    """Every line of a file, each parsed as JSON (a split or partial line fails here)."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"{path} ends in a partial line"
    return [json.loads(text) for text in data.decode().splitlines()]


def plug_lines(*paths: Path) -> list[dict]:
    return [d for p in paths if p.exists() for d in read_lines(p)
            if d["metric"].startswith("plug.")]


def all_delivered(messages: int):
    """A /status predicate: `messages` received and every stored reading in every sink.

    (Files are read only after this: a file being written may end mid-line.)
    """
    return lambda s: s["ingest"]["received"] >= messages and all(
        k["delivered"] >= s["ingest"]["stored"] for k in s["sinks"])


def publish_all(publisher, messages: list[tuple[str, str]]) -> None:
    infos = [publisher.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(10)


def gateway_config(mosquitto, sinks: list[dict]) -> dict:
    # Self-metrics only once, at start: nothing is written after the readings.
    return {"gateway": {"name": "hall", "tags": {"site": "kilnwick"},
                        "self_metrics_interval": 3600},
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            "devices": [DEVICE], "sinks": sinks}


def test_tasmota_readings_arrive_as_json_lines(mosquitto, publisher, make_gateway):
    gw = make_gateway(gateway_config(mosquitto, [
        {"name": "local", "type": "file", "path": "out/readings.jsonl"}]))
    gw.start()
    path = gw.data_dir / "out" / "readings.jsonl"  # inside data_dir; folder made
    started = time.time()
    publish_all(publisher, [("tele/defib_socket/SENSOR", sensor(n)) for n in range(1, 6)]
                + [("stat/defib_socket/POWER", "OFF")])
    want = Counter(k for n in range(1, 6) for k in expected(n))
    want[key("plug.switch", 0, "", TAGS)] += 1

    assert gw.wait_for(all_delivered(6), 15), gw.status()
    lines = plug_lines(path)
    assert Counter(key_of(d) for d in lines) == want
    for d in lines:
        # The gateway's one JSON form of a reading, as the MQTT sink sends it too:
        # every key, in this order, `unit` even when empty.
        assert list(d) == ["metric", "value", "ts", "type", "unit", "tags", "priority"], d
        assert isinstance(d["ts"], float) and round(d["ts"], 3) == d["ts"]
        assert started - 1 <= d["ts"] <= time.time() + 1
    assert next(d for d in lines if d["metric"] == "plug.switch")["unit"] == ""
    power = [d["value"] for d in lines if d["metric"] == "plug.power"]
    assert power == [1.0, 2.0, 3.0, 4.0, 5.0]  # in arrival order

    sink = gw.sink("local")
    assert sink["type"] == "FileSink" and "fsync" in sink["confirms"]
    assert sink["delivered"] >= 31 and sink["dropped"] == {}
    assert gw.stop() == 0


def test_rotation_keeps_lines_whole_and_files_within_max_bytes(mosquitto, publisher,
                                                                make_gateway):
    max_bytes = 4096
    gw = make_gateway(gateway_config(mosquitto, [
        {"name": "all", "type": "file", "path": "all.jsonl", "max_bytes": max_bytes,
         "keep": 200},
        {"name": "recent", "type": "file", "path": "recent.jsonl", "max_bytes": max_bytes,
         "keep": 3},
    ]))
    gw.start()
    messages = 200  # 1,200 readings, about 240 KB: some 60 files of 4 KB
    publish_all(publisher, [("tele/defib_socket/SENSOR", sensor(n))
                            for n in range(1, messages + 1)])
    everything = Counter(k for n in range(1, messages + 1) for k in expected(n))

    def files(stem: str) -> list[Path]:
        """path, path.1, path.2 ... (newest first), as long as they exist."""
        found = [gw.data_dir / stem]
        while (nxt := gw.data_dir / f"{stem}.{len(found)}").exists():
            found.append(nxt)
        return found

    assert gw.wait_for(all_delivered(messages), 15), gw.status()
    assert gw.stop() == 0

    kept = files("all.jsonl")
    assert len(kept) > 40
    for f in kept:
        assert f.stat().st_size <= max_bytes, f  # no single line is longer than 4 KB here
    # Every line whole and valid JSON (read_lines), each reading exactly once.
    assert Counter(key_of(d) for d in plug_lines(*reversed(kept))) == everything
    power = [d["value"] for d in plug_lines(*reversed(kept)) if d["metric"] == "plug.power"]
    assert power == [float(n) for n in range(1, messages + 1)]

    # keep: 3 holds the newest four files (path and path.1..path.3): the same bytes,
    # since both sinks saw the same lines and cut them at the same places.
    recent = files("recent.jsonl")
    assert [f.name for f in recent] == ["recent.jsonl"] + [f"recent.jsonl.{i}" for i in (1, 2, 3)]
    for mine, full in zip(recent, kept, strict=False):
        assert mine.read_bytes() == full.read_bytes(), mine
    assert re.search(r"sink recent: removed \S*recent\.jsonl\.3 \(keep: 3", gw.log_text())


def test_a_file_that_cannot_be_written_keeps_readings_until_fixed(mosquitto, publisher,
                                                                   make_gateway):
    gw = make_gateway(gateway_config(mosquitto, [
        {"name": "local", "type": "file", "path": "blocked/readings.jsonl",
         "backoff_min": 0.2, "backoff_max": 1}]))
    blocker = gw.data_dir / "blocked"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a regular file where the folder should be\n")  # ENOTDIR, even as root
    path = blocker / "readings.jsonl"
    gw.start()
    publish_all(publisher, [("tele/defib_socket/SENSOR", sensor(n)) for n in range(1, 4)])

    assert gw.wait_for(lambda s: s["sinks"][0]["state"] == "retrying"
                       and s["sinks"][0]["backlog_rows"] >= 18, 15), gw.status()
    shown = gw.cli("status", "--config", str(gw.config_path))
    assert shown.returncode == 1, shown.stderr  # running, degraded: the sink cannot write
    assert re.search(r"local \[retrying\] backlog \d+ rows", shown.stdout), shown.stdout
    error = f"last error: cannot write {path}: Not a directory (ENOTDIR)"
    assert error in shown.stdout, shown.stdout
    assert f"sink local: cannot write {path}: Not a directory (ENOTDIR); retrying" \
        in gw.log_text()
    assert gw.sink("local")["delivered"] == 0

    blocker.unlink()  # the fix: now the folder can be made
    want = Counter(k for n in range(1, 4) for k in expected(n))
    assert gw.wait_for(all_delivered(3), 10), gw.status()
    assert Counter(key_of(d) for d in plug_lines(path)) == want
    assert "sink local: delivering again" in gw.log_text()
    assert gw.stop() == 0


# -- the sink on its own, on a real file system --------------------------------------

INFO = SeriesInfo("plug.power", "gauge", "W", "normal", {"device": "kitchen-urn"})


def rows(first: int, count: int) -> list[Row]:
    return [Row(i, 1, 1_763_634_900_000 + i, float(i), INFO)
            for i in range(first, first + count)]


def sink_for(path: Path, **settings: object) -> FileSink:
    config = parse_config(json.dumps({"gateway": {"name": "hall"}, "sinks": [
        {"name": "local", "type": "file", "path": str(path), **settings}]}), "x.yaml", {})
    sink = make_sink(config.sinks[0], SinkContext("hall", SYSTEM, path.parent))
    assert isinstance(sink, FileSink)
    return sink


def test_a_partial_last_line_from_a_crash_is_ended_before_writing(tmp_path, caplog):
    path = tmp_path / "readings.jsonl"
    path.write_bytes(b'{"ts":1763634900.001,"metric":"plug.power","value":1.0}\n{"ts":17636')
    sink = sink_for(path)
    with caplog.at_level(logging.WARNING, "gateway.sink.file"):
        outcome = asyncio.run(sink.send(rows(1, 3)))
    asyncio.run(sink.close())
    assert (outcome.done, outcome.delivered, outcome.error) == (3, 3, "")
    lines = path.read_bytes().splitlines()
    assert lines[1] == b'{"ts":17636'  # kept as it was: the batch it belonged to is re-sent
    assert [json.loads(x)["value"] for x in lines[2:]] == [1.0, 2.0, 3.0]
    assert "partial line" in caplog.text


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(tmp_path):
    path = tmp_path / "readings.jsonl"
    sink = sink_for(path, max_bytes=50, keep=10)  # every line is ~120 bytes
    assert asyncio.run(sink.send(rows(1, 4))).delivered == 4
    asyncio.run(sink.close())
    files = [path, *(tmp_path / f"readings.jsonl.{i}" for i in (1, 2, 3))]
    assert [json.loads(f.read_bytes())["value"] for f in files] == [4.0, 3.0, 2.0, 1.0]
    assert not (tmp_path / "readings.jsonl.4").exists()


def test_a_folder_in_the_way_is_a_clear_failure_and_nothing_is_confirmed(tmp_path):
    path = tmp_path / "readings.jsonl"
    path.mkdir()
    sink = sink_for(path)
    outcome = asyncio.run(sink.send(rows(1, 2)))
    assert (outcome.done, outcome.delivered) == (0, 0)
    assert outcome.error == f"cannot write {path}: Is a directory (EISDIR)"
    path.rmdir()
    assert asyncio.run(sink.send(rows(1, 2))).delivered == 2
    asyncio.run(sink.close())
    assert len(read_lines(path)) == 2


def test_a_file_moved_away_is_followed_by_a_new_one(tmp_path):
    path = tmp_path / "readings.jsonl"
    sink = sink_for(path)
    asyncio.run(sink.send(rows(1, 2)))
    path.rename(tmp_path / "archived.jsonl")  # as logrotate does
    asyncio.run(sink.send(rows(3, 2)))
    asyncio.run(sink.close())
    assert [d["value"] for d in read_lines(tmp_path / "archived.jsonl")] == [1.0, 2.0]
    assert [d["value"] for d in read_lines(path)] == [3.0, 4.0]


def test_the_default_file_is_in_data_dir_not_beside_the_config(mosquitto, publisher,
                                                                 make_gateway):
    """Installed, the config is in /etc/edge-gateway, which the service may not write;
    its data_dir (/var/lib/edge-gateway) is where a sink with no path writes."""
    gw = make_gateway(gateway_config(mosquitto, [{"name": "local", "type": "file"}]))
    assert gw.data_dir.parent == gw.workdir == gw.config_path.parent  # data_dir: <workdir>/data
    gw.start()
    publish_all(publisher, [("tele/defib_socket/SENSOR", sensor(7))])
    assert gw.wait_for(all_delivered(1), 15), gw.status()
    assert gw.stop() == 0
    assert Counter(key_of(d) for d in plug_lines(gw.data_dir / "readings.jsonl")) \
        == Counter(expected(7))
    assert not (gw.workdir / "readings.jsonl").exists()


def test_file_sink_defaults():
    config = parse_config("gateway: {name: hall}\nsinks:\n  - {name: local, type: file}\n",
                          "x.yaml", {})
    assert config.sinks[0].path == "readings.jsonl"
    assert config.sinks[0].max_bytes == 10_000_000 and config.sinks[0].keep == 5
    assert config.sinks[0].fsync is True


def test_file_sink_settings_are_checked():
    with pytest.raises(ConfigError) as info:
        parse_config("gateway: {name: hall}\nsinks:\n"
                     "  - {name: local, type: file, path: out/, max_bytes: -1, keep: -2}\n",
                     "x.yaml", {})
    found = [str(p) for p in info.value.problems]
    assert "sinks[0].path: must name a file (e.g. readings.jsonl), not a folder" in found
    assert "sinks[0].max_bytes: must be 0 (never rotate) or more" in found
    assert "sinks[0].keep: must be 0 (delete a full file) or more" in found
