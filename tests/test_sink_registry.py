"""Sinks build themselves from a registry: a new kind is its module, its settings class
and one registry line; an unknown `type` is an error; reading a config loads no
sink's network library.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from gateway.clock import SYSTEM
from gateway.config.load import parse_config
from gateway.config.schema import SinkCommon
from gateway.config.validate import ConfigError, doc
from gateway.model import Row
from gateway.sinks.base import Outcome, Sink, SinkContext
from gateway.sinks.registry import SINKS, SinkKind, make_sink

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class NoteSinkConfig(SinkCommon):
    type: Literal["note"] = "note"
    prefix: str = field(default="", metadata=doc("put before each value"))


class NoteSink(Sink):
    confirms = "a note in memory"

    def __init__(self, config: NoteSinkConfig, clock=SYSTEM) -> None:
        super().__init__(config.name, clock)
        self.prefix = config.prefix
        self.notes: list[str] = []

    async def send(self, rows: Sequence[Row]) -> Outcome:
        self.notes.extend(f"{self.prefix}{r.value}" for r in rows)
        return Outcome(done=len(rows), delivered=len(rows))


def _config(sink: dict) -> str:
    return json.dumps({"gateway": {"name": "hall"}, "sinks": [{"name": "s", **sink}]})


def test_every_kind_builds_its_own_sink(tmp_path):
    settings = {"influx": {"url": "http://127.0.0.1:8428"}, "datadog": {"api_key": "k"},
                "mqtt": {}, "file": {}}
    assert set(settings) == set(SINKS)
    for kind, extra in settings.items():
        config = parse_config(_config({"type": kind, **extra}), str(tmp_path / "g.yaml"), {})
        sink = make_sink(config.sinks[0], SinkContext("hall", SYSTEM, tmp_path))
        assert type(config.sinks[0]) is SINKS[kind].config
        assert type(sink).__name__ == SINKS[kind].sink.rpartition(":")[2]


def test_a_new_kind_needs_its_module_its_settings_and_one_registry_line(tmp_path):
    SINKS["note"] = SinkKind(NoteSinkConfig, f"{__name__}:NoteSink")
    SinkCommon.variants["note"] = NoteSinkConfig
    try:
        config = parse_config(_config({"type": "note", "prefix": "#"}),
                              str(tmp_path / "g.yaml"), {})
        sink = make_sink(config.sinks[0], SinkContext("hall", SYSTEM, tmp_path))
        assert isinstance(sink, NoteSink) and sink.prefix == "#"
        with pytest.raises(ConfigError) as bad:
            parse_config(_config({"type": "note", "prefx": "#"}), "g.yaml", {})
        assert "sinks[0].prefx: unknown key (did you mean 'prefix'?)" in str(bad.value)
    finally:
        del SINKS["note"], SinkCommon.variants["note"]


def test_an_unknown_type_is_an_error_naming_the_known_ones():
    with pytest.raises(ConfigError) as bad:
        parse_config(_config({"type": "kafka"}), "g.yaml", {})
    assert ("sinks[0].type: must be one of 'influx', 'datadog', 'mqtt', 'file', "
            "got 'kafka'") in str(bad.value)


def test_reading_a_config_and_the_store_commands_load_no_network_library(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text(_config({"type": "influx", "url": "http://127.0.0.1:8428"}))
    probe = (
        "import sys\n"
        "from gateway.cli.main import main\n"
        f"main(['check', '--config', {str(config)!r}])\n"
        f"main(['store', 'stats', '--config', {str(config)!r}])\n"
        f"main(['status', '--config', {str(config)!r}])\n"
        "print(sorted(m for m in ('aiohttp', 'paho') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr
