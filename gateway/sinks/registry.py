"""Every kind of sink, by the `type` a `sinks[]` entry gives: its settings and its class.

A new kind of sink is its own module (the sink), its settings class beside it
(`<kind>_config.py`, a `SinkCommon` with `type: Literal["<kind>"]`), one line
here, and its tests; nothing else changes. The sink's module is imported only
when a gateway builds one, so reading a config (`gateway check`, `gateway
status`) does not load aiohttp or paho.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from gateway.config.schema import SinkCommon
from gateway.sinks.base import Sink, SinkContext
from gateway.sinks.datadog_config import DatadogSinkConfig
from gateway.sinks.file_config import FileSinkConfig
from gateway.sinks.influx_config import InfluxSinkConfig
from gateway.sinks.mqtt_config import MqttSinkConfig


@dataclass(frozen=True)
class SinkKind:
    config: type[SinkCommon]
    #: "module:Class" of the sink; the class has `build(config, context)`
    sink: str


SINKS: dict[str, SinkKind] = {
    "influx": SinkKind(InfluxSinkConfig, "gateway.sinks.influx:InfluxSink"),
    "datadog": SinkKind(DatadogSinkConfig, "gateway.sinks.datadog:DatadogSink"),
    "mqtt": SinkKind(MqttSinkConfig, "gateway.sinks.mqtt:MqttSink"),
    "file": SinkKind(FileSinkConfig, "gateway.sinks.jsonlines:FileSink"),
}

# The config reads a `sinks[]` entry as the settings class its `type` names.
SinkCommon.variants.update({name: kind.config for name, kind in SINKS.items()})


def make_sink(config: SinkCommon, context: SinkContext) -> Sink:
    """The sink for one `sinks[]` entry."""
    kind = SINKS[getattr(config, "type", "")]
    module, _, name = kind.sink.partition(":")
    cls = getattr(importlib.import_module(module), name)
    sink: Sink = cls.build(config, context)
    return sink
