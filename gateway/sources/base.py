"""What a source is: something that hands raw messages to the ingest stage.

A source (the MQTT subscription today; serial ports, GPIO pins and local checks
next) produces `RawMessage`s — origin kind and name, payload, receive time —
and calls `submit(message, ack)`. `ack` is called once the message's readings
are committed (MQTT sends its PUBACK then); a source with nothing to
acknowledge (a serial line, a check) passes None. `submit` may block while
ingest holds its window of unacknowledged messages: that is the back-pressure.

The decoder matches a message on its origin kind and name (an MQTT topic; a
serial port; a check's name), so a new source needs its module, its settings
class, a line in the source registry (gateway.sources.registry), a profile,
and nothing in ingest or the gateway.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.clock import Clock
from gateway.health.stats import Stats
from gateway.model import RawMessage

#: hands one message to ingest; the callable is the acknowledgement, or None
Submit = Callable[[RawMessage, Callable[[], None] | None], None]


@dataclass(frozen=True)
class SourceContext:
    """What a source may need from the gateway that builds it."""

    gateway_name: str
    clock: Clock
    #: the gateway's data_dir: where a source keeps files of its own
    data_dir: Path
    stats: Stats
    submit: Submit


class Source(abc.ABC):
    """One source of raw messages. `start` returns at once; the source runs in a thread
    of its own (or its library's) until `stop`."""

    #: the origin kind of its messages (RawMessage.kind)
    kind: str = ""

    @classmethod
    def build(cls, config: Any, context: SourceContext) -> Source:
        """The source for one `sources[]` entry (its settings class, see the registry)."""
        raise NotImplementedError(f"{cls.__name__} is not built from a sources[] entry")

    def __init__(self, name: str) -> None:
        self.name = name
        #: an exception that broke it (a bug in its thread): the gateway stops with exit
        #: status 1 when it sees one (gateway.app.supervise)
        self.failure: BaseException | None = None

    @abc.abstractmethod
    def start(self) -> None:
        """Begin reading and submitting; must not raise for an unreachable device."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop reading; what was submitted is the ingest stage's from here."""

    def ready(self) -> bool:
        """Whether it is reading now (connected, port open): /health and status."""
        return True

    def problem(self) -> str:
        """Why it is not ready, in words; empty when it is."""
        return ""

    def status(self) -> dict[str, Any]:
        """What `gateway status` shows of it beside its name, type and readiness."""
        return {}

    def tick(self) -> None:
        """Called every couple of seconds from the event loop, for periodic chores."""
