"""A serial port read as lines: one message a line, from a GPS receiver, an Arduino on
USB, any device that prints readings.

A line ends at LF (a CR before it is dropped, as NMEA and most firmware send CR LF);
an empty line is skipped; a line longer than `max_line_bytes` is dropped whole, up
to its end, and counted, so one runaway device cannot grow memory or glue two
readings together. Opening, losing and reopening the port: gateway.sources.port.
Every complete line was handed to ingest as it came; a partial line at the moment
the port went is dropped (counted `cut`): its end never came.

A serial line has no acknowledgement: a line is the gateway's once `submit`
returns. What it read and had not committed when the power went is lost, as
with any device that does not resend; the README says so.
"""

from __future__ import annotations

from typing import Any

import serial

from gateway.clock import Clock
from gateway.health.stats import Stats
from gateway.model import RawMessage
from gateway.sources.base import Submit
from gateway.sources.port import PORT_ERRORS, Opener, PortSource, log, words
from gateway.sources.serial_config import SerialSourceConfig


class SerialSource(PortSource):
    kind = "serial"

    def __init__(self, config: SerialSourceConfig, clock: Clock, stats: Stats, submit: Submit,
                 opener: Opener = serial.serial_for_url) -> None:
        super().__init__(config, clock, stats, submit, opener)
        self.config = config
        self._warned_long = False
        encoding = config.encoding.lower().replace("_", "-")
        self._transcode = encoding not in ("utf-8", "utf8")

    def status(self) -> dict[str, Any]:
        counters, _ = self.stats.snapshot()
        dropped = {dict(k).get("reason", ""): v
                   for k, v in counters.get("gateway.serial_dropped", {}).items()
                   if dict(k).get("source") == self.name}
        return {**super().status(), "dropped": dropped}

    def session(self, port: Any) -> None:
        self._warned_long = False
        limit = int(self.config.max_line_bytes)
        pending = bytearray()
        skipping = False  # inside a line already dropped as too long
        while not self.stopping.is_set():
            try:
                chunk = port.read(port.in_waiting or 1)
            except PORT_ERRORS as exc:
                if pending and not skipping:
                    self._dropped("cut")
                self.gone(f"{self.port_name} went away: {words(exc)}")
                return
            if not chunk:
                continue
            pending += chunk
            while True:
                end = pending.find(b"\n")
                if end < 0:
                    if len(pending) > limit:
                        if not skipping:
                            self._too_long()
                        skipping = True
                        pending.clear()
                    break
                line = bytes(pending[:end])
                del pending[:end + 1]
                if skipping:
                    skipping = False  # the end of the dropped line
                    continue
                if len(line) > limit:
                    self._too_long()
                    continue
                self._hand_on(line.rstrip(b"\r"))

    def _hand_on(self, line: bytes) -> None:
        if not line.strip():
            return
        if self._transcode:
            try:
                line = line.decode(self.config.encoding).encode("utf-8")
            except UnicodeDecodeError:
                self._dropped("not_text")
                return
        self.submit(RawMessage(self.name, line, self.clock.now(), kind="serial"), None)

    def _dropped(self, reason: str) -> None:
        self.stats.inc("gateway.serial_dropped", source=self.name, reason=reason)

    def _too_long(self) -> None:
        self._dropped("too_long")
        if not self._warned_long:  # once a connection: the count says how many since
            self._warned_long = True
            log.warning("serial source %s: a line longer than %d bytes was dropped (more are "
                        "counted as gateway.serial_dropped too_long, not logged)", self.name,
                        int(self.config.max_line_bytes))
