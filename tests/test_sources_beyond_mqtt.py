"""The gateway runs several sources; one that is not MQTT is built from its `sources[]`
entry through the source registry and feeds the store without ingest knowing what it is.

A kind of source here is what a serial port or a local check will be: its module
(a few lines), its settings class, one registry entry. It hands `RawMessage`s
to `submit` with no acknowledgement (a serial line has none). Everything else is
real: Mosquitto for the MQTT source, the config loader, the gateway on its
store, the file sink. What the user sees: the second source's readings in the
file beside the MQTT ones, its problem in /health while it is not ready, a
message from a kind of origin no device reads counted, not lost silently, and a
`type` nobody registered named in the config error.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from reliability.inprocess import GatewayThread, TestClock

from gateway.config.load import parse_config
from gateway.config.schema import SourceCommon
from gateway.config.validate import ConfigError
from gateway.model import RawMessage
from gateway.sources.base import Source, SourceContext, Submit
from gateway.sources.registry import SOURCES, SourceKind, register


@dataclass(frozen=True)
class LineSourceConfig(SourceCommon):
    type: Literal["bench-line"] = "bench-line"
    port: str = field(default="/dev/ttyUSB0")


class LineSource(Source):
    """Stands for a serial port: each `line()` becomes a message with no acknowledgement."""

    kind = "mqtt"  # it routes on a device topic, as a bridge that republishes would

    @classmethod
    def build(cls, config: Any, context: SourceContext) -> LineSource:
        return cls(config.name, config.port, context.submit)

    def __init__(self, name: str, port: str, submit: Submit) -> None:
        super().__init__(name)
        self.port = port
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
        return "" if self.open else f"serial port {self.port} is not open"

    def line(self, origin: str, text: bytes, kind: str = "mqtt") -> None:
        self.submit(RawMessage(origin, text, time.time(), kind=kind), None)


@pytest.fixture
def bench_line() -> Iterator[None]:
    """The kind registered as a new source's module would register it, and taken away after."""
    register("bench-line", SourceKind(LineSourceConfig, f"{__name__}:LineSource"))
    yield
    del SOURCES["bench-line"]
    del SourceCommon.variants["bench-line"]


def _powers(path: Path) -> list[float]:
    if not path.exists():
        return []
    return sorted(d["value"] for d in map(json.loads, path.read_text().splitlines())
                  if d["metric"] == "plug.power")


def test_a_second_source_feeds_the_store_and_says_when_it_is_not_ready(mosquitto, tmp_path,
                                                                       bench_line):
    config: dict[str, Any] = {
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "store": {"commit_interval": 0.05},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "plug1", "profile": "tasmota", "topic": "plug1"}],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
        "sources": [{"name": "bench-port", "type": "bench-line", "port": "/dev/ttyACM0"}]}
    gw = GatewayThread(config, tmp_path, TestClock(time.time()))
    port = gw.gateway.sources[-1]
    assert isinstance(port, LineSource) and port.name == "bench-port"
    gw.start()
    try:
        assert port.started.wait(5)
        assert gw.gateway.health() == ["serial port /dev/ttyACM0 is not open"]

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


def test_a_source_type_nobody_registered_is_named_in_the_error(bench_line):
    text = "gateway: {name: hall}\nsources:\n  - {name: van, type: serail}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "/etc/gateway/gateway.yaml")
    message = str(caught.value)
    assert "gateway.yaml" in message and "sources[0].type" in message, message
    assert "'bench-line'" in message and "'serail'" in message, message


def test_two_sources_may_not_share_a_name(bench_line):
    text = ("gateway: {name: hall}\nsources:\n  - {name: van, type: bench-line}\n"
            "  - {name: van, type: bench-line, port: /dev/ttyUSB1}\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "gateway.yaml")
    assert "sources[1]" in str(caught.value) and "'van'" in str(caught.value)
