"""The gateway runs several sources; one that is not MQTT feeds the store without ingest
knowing what it is.

A source here is a few lines, as a serial port or a local check will be: it
hands `RawMessage`s to `submit` with no acknowledgement (a serial line has
none). Everything else is real: Mosquitto for the MQTT source, the gateway on
its store, the file sink. What the user sees: the second source's readings in
the file beside the MQTT ones, its problem in /health while it is not ready,
and a message from a kind of origin no device reads counted, not lost silently.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from reliability.inprocess import GatewayThread, TestClock

from gateway.model import RawMessage
from gateway.sources.base import Source, Submit


class LineSource(Source):
    """Stands for a serial port: each `line()` becomes a message with no acknowledgement."""

    kind = "mqtt"  # it routes on a device topic, as a bridge that republishes would

    def __init__(self, submit: Submit) -> None:
        super().__init__("bench-port")
        self.submit = submit
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.open = False

    def start(self) -> None:
        self.started.set()

    def stop(self) -> None:
        self.stopped.set()

    def ready(self) -> bool:
        return self.open

    def problem(self) -> str:
        return "" if self.open else "serial port bench-port is not open"

    def line(self, origin: str, text: bytes, kind: str = "mqtt") -> None:
        self.submit(RawMessage(origin, text, time.time(), kind=kind), None)


def _powers(path: Path) -> list[float]:
    if not path.exists():
        return []
    return sorted(d["value"] for d in map(json.loads, path.read_text().splitlines())
                  if d["metric"] == "plug.power")


def test_a_second_source_feeds_the_store_and_says_when_it_is_not_ready(mosquitto, tmp_path):
    config: dict[str, Any] = {
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "store": {"commit_interval": 0.05},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "plug1", "profile": "tasmota", "topic": "plug1"}],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}]}
    gw = GatewayThread(config, tmp_path, TestClock(time.time()))
    port = LineSource(gw.gateway.ingest.submit)
    gw.gateway.sources.append(port)
    gw.start()
    try:
        assert port.started.wait(5)
        assert gw.gateway.health() == ["serial port bench-port is not open"]

        port.open = True
        port.line("tele/plug1/SENSOR", b'{"ENERGY": {"Power": 41}}')
        port.line("tele/plug1/SENSOR", b'{"ENERGY": {"Power": 42}}')
        port.line("bench-port", b"ENERGY 43", kind="serial")  # no device reads serial yet
        out = gw.gateway.data_dir / "readings.jsonl"
        deadline = time.monotonic() + 15
        while _powers(out) != [41.0, 42.0] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _powers(out) == [41.0, 42.0]
        assert gw.gateway.health() == []
        status = gw.status()
        assert status["ingest"]["received"] >= 3
        assert status["ingest"]["undecodable"].get("unknown_topic") == 1, status["ingest"]
    finally:
        gw.stop()
    assert port.stopped.is_set()
