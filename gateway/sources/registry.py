"""Every kind of source besides the local broker, by the `type` a `sources[]` entry gives.

The local broker is the `mqtt:` section and always runs (gateway.sources.mqtt).
A new kind of source (a serial port, GPIO pins, local checks) is its own module,
its settings class beside it (`<kind>_config.py`, a `SourceCommon` with
`type: Literal["<kind>"]`), one line in SOURCES, a profile for its messages,
and its tests; nothing else changes. As with sinks, the source's module is
imported only when a gateway builds one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from gateway.config.schema import SourceCommon
from gateway.sources.base import Source, SourceContext
from gateway.sources.elm327_config import Elm327SourceConfig
from gateway.sources.gpio_config import GpioSourceConfig
from gateway.sources.serial_config import SerialSourceConfig


@dataclass(frozen=True)
class SourceKind:
    config: type[SourceCommon]
    #: "module:Class" of the source; the class has `build(config, context)`
    source: str


SOURCES: dict[str, SourceKind] = {
    "serial": SourceKind(SerialSourceConfig, "gateway.sources.serial:SerialSource"),
    "elm327": SourceKind(Elm327SourceConfig, "gateway.sources.elm327:Elm327Source"),
    "gpio": SourceKind(GpioSourceConfig, "gateway.sources.gpio:GpioSource"),
}


def register(name: str, kind: SourceKind) -> None:
    """Add a kind of source: the config reads `sources[]` entries of this `type` as
    `kind.config` from here on."""
    SOURCES[name] = kind
    SourceCommon.variants[name] = kind.config


for _name, _kind in SOURCES.items():
    register(_name, _kind)


def make_source(config: SourceCommon, context: SourceContext) -> Source:
    """The source for one `sources[]` entry."""
    kind = SOURCES[getattr(config, "type", "")]
    module, _, name = kind.source.partition(":")
    cls = getattr(importlib.import_module(module), name)
    source: Source = cls.build(config, context)
    return source
