"""A serial port: one message a line, from a GPS receiver, an Arduino on USB, any
device that prints readings.

One thread reads the port. A line ends at LF (a CR before it is dropped, as NMEA
and most firmware send CR LF); an empty line is skipped; a line longer than
`max_line_bytes` is dropped whole, up to its end, and counted, so one runaway
device cannot grow memory or glue two readings together. When the port cannot
be opened (not there, busy, no permission) or disappears while read (the USB
adapter unplugged, the van's ignition cut), the source says why in status and
/health and tries again, waiting `retry_min` doubling to `retry_max`, without
the gateway restarting and without losing what it read before: every complete
line was already handed to ingest. A partial line at the moment the port went
is dropped (counted `cut`): its end never came.

A serial line has no acknowledgement: a line is the gateway's once `submit`
returns. What it read and had not committed when the power went is lost, as
with any device that does not resend; the README says so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import serial

from gateway.clock import Clock
from gateway.health.stats import Stats
from gateway.model import RawMessage
from gateway.sources.base import Source, SourceContext, Submit
from gateway.sources.serial_config import SerialSourceConfig

log = logging.getLogger("gateway.serial")

#: how long one read waits for a byte: the longest a stop waits for the thread
READ_WAIT = 0.2

Opener = Callable[..., Any]


class SerialSource(Source):
    kind = "serial"

    @classmethod
    def build(cls, config: Any, context: SourceContext) -> SerialSource:
        return cls(config, context.clock, context.stats, context.submit)

    def __init__(self, config: SerialSourceConfig, clock: Clock, stats: Stats, submit: Submit,
                 opener: Opener = serial.serial_for_url) -> None:
        super().__init__(config.name)
        self.config = config
        self.clock = clock
        self.stats = stats
        self.submit = submit
        self.opener = opener
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open = False
        self._why = "not opened yet"
        self.opened = 0  # times the port was opened (a reopen after it went counts)
        self._warned_long = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._guarded, name=f"serial-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def ready(self) -> bool:
        return self._open

    def problem(self) -> str:
        return "" if self._open else f"serial source {self.name}: {self._why}"

    def status(self) -> dict[str, Any]:
        counters, _ = self.stats.snapshot()
        dropped = {dict(k).get("reason", ""): v
                   for k, v in counters.get("gateway.serial_dropped", {}).items()
                   if dict(k).get("source") == self.name}
        return {"port": self.config.port, "problem": "" if self._open else self._why,
                "opened": self.opened, "dropped": dropped}

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # a bug: the supervisor sees it and stops the gateway
            self.failure = exc
            log.exception("serial source %s died", self.name)

    def _run(self) -> None:
        wait = float(self.config.retry_min)
        while not self._stop.is_set():
            port = self._open_port()
            if port is None:
                self._stop.wait(wait)
                wait = min(wait * 2, float(self.config.retry_max))
                continue
            wait = float(self.config.retry_min)
            try:
                self._read(port)
            finally:
                self._open = False
                try:
                    port.close()
                except (OSError, serial.SerialException):
                    pass
            if not self._stop.is_set():
                self._stop.wait(wait)

    def _open_port(self) -> Any | None:
        config = self.config
        try:
            port = self.opener(config.port, baudrate=config.baudrate, timeout=READ_WAIT,
                               exclusive=True)
        except (OSError, serial.SerialException, ValueError) as exc:
            why = _words(exc)
            if why != self._why:
                log.warning("serial source %s: cannot open %s: %s; trying again", self.name,
                            config.port, why)
            self._why = f"cannot open {config.port}: {why}"
            return None
        self._open = True
        self._warned_long = False
        self.opened += 1
        log.info("serial source %s: reading %s at %d baud", self.name, config.port,
                 config.baudrate)
        return port

    def _read(self, port: Any) -> None:
        limit = int(self.config.max_line_bytes)
        pending = bytearray()
        skipping = False  # inside a line already dropped as too long
        while not self._stop.is_set():
            try:
                chunk = port.read(port.in_waiting or 1)
            except (OSError, serial.SerialException) as exc:
                why = _words(exc)
                log.warning("serial source %s: %s went away (%s); trying again", self.name,
                            self.config.port, why)
                self._why = f"{self.config.port} went away: {why}"
                if pending and not skipping:
                    self.stats.inc("gateway.serial_dropped", source=self.name, reason="cut")
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
        if self.config.encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
            try:
                line = line.decode(self.config.encoding).encode("utf-8")
            except UnicodeDecodeError:
                self.stats.inc("gateway.serial_dropped", source=self.name, reason="not_text")
                return
        self.submit(RawMessage(self.name, line, self.clock.now(), kind="serial"), None)

    def _too_long(self) -> None:
        self.stats.inc("gateway.serial_dropped", source=self.name, reason="too_long")
        if not self._warned_long:  # once a connection: the count says how many since
            self._warned_long = True
            log.warning("serial source %s: a line longer than %d bytes was dropped (more are "
                        "counted as gateway.serial_dropped too_long, not logged)", self.name,
                        int(self.config.max_line_bytes))


def _words(exc: BaseException) -> str:
    """An error in a sentence: pyserial's own text, or the OS error's."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
