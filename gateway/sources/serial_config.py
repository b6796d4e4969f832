"""A serial port's settings (`sources[]` entry with `type: serial`)."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.schema import SourceCommon
from gateway.config.validate import Bytes, Duration, doc


@dataclass(frozen=True)
class SerialSourceConfig(SourceCommon):
    type: Literal["serial"] = "serial"
    port: str = field(default="", metadata=doc(
        "the port: a device (/dev/ttyUSB0, /dev/serial/by-id/usb-...: stays the same "
        "when the adapter is plugged into another socket) or a pyserial URL "
        "(socket://host:port, rfc2217://host:port)"))
    baudrate: int = field(default=9600, metadata=doc(
        "line speed: 9600 for most GPS receivers, 115200 for an Arduino's Serial.begin"))
    encoding: str = field(default="utf-8", metadata=doc(
        "the text encoding of its lines (ascii, latin-1 ...); lines are handed on as UTF-8"))
    max_line_bytes: Bytes = field(default=Bytes(4096), metadata=doc(
        "a longer line is dropped (counted as serial_dropped too_long) up to its end"))
    retry_min: Duration = field(default=Duration(1.0), metadata=doc(
        "first wait before opening the port again after it failed or disappeared"))
    retry_max: Duration = field(default=Duration(30.0), metadata=doc(
        "longest wait between attempts (the wait doubles up to this)"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from SourceCommon.check(self)
        if not self.port.strip():
            yield "port", "name the port, e.g. /dev/ttyUSB0 or socket://192.168.1.20:4000"
        if self.baudrate <= 0:
            yield "baudrate", "must be more than 0, e.g. 9600"
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            yield "encoding", f"{self.encoding!r} is not a text encoding Python knows"
        if self.max_line_bytes < 16:
            yield "max_line_bytes", "must be at least 16"
        if self.retry_min <= 0 or self.retry_max < self.retry_min:
            yield "retry_max", "retry_min must be more than 0 and retry_max at least retry_min"
