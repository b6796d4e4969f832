"""What the settings of every source on a serial port share: the port, its speed, and
how soon to open it again after it failed or went away (gateway.sources.port)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway.config.schema import SourceCommon
from gateway.config.validate import Duration, doc


@dataclass(frozen=True)
class PortSourceConfig(SourceCommon):
    port: str = field(default="", metadata=doc(
        "the port: a device (/dev/ttyUSB0, /dev/serial/by-id/usb-...: stays the same "
        "when the adapter is plugged into another socket) or a pyserial URL "
        "(socket://host:port, rfc2217://host:port)"))
    baudrate: int = field(default=9600, metadata=doc("line speed"))
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
        if self.retry_min <= 0 or self.retry_max < self.retry_min:
            yield "retry_max", "retry_min must be more than 0 and retry_max at least retry_min"
