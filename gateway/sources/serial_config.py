"""A serial port's settings (`sources[]` entry with `type: serial`)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.validate import Bytes, doc
from gateway.sources.port_config import PortSourceConfig


@dataclass(frozen=True)
class SerialSourceConfig(PortSourceConfig):
    type: Literal["serial"] = "serial"
    baudrate: int = field(default=9600, metadata=doc(
        "line speed: 9600 for most GPS receivers, 115200 for an Arduino's Serial.begin"))
    encoding: str = field(default="utf-8", metadata=doc(
        "the text encoding of its lines (ascii, latin-1 ...); lines are handed on as UTF-8"))
    max_line_bytes: Bytes = field(default=Bytes(4096), metadata=doc(
        "a longer line is dropped (counted as serial_dropped too_long) up to its end"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from PortSourceConfig.check(self)
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            yield "encoding", f"{self.encoding!r} is not a text encoding Python knows"
        if self.max_line_bytes < 16:
            yield "max_line_bytes", "must be at least 16"
