"""What every source on a serial port shares: one thread that opens the port, runs a
session on it until it fails or the source stops, and opens it again after a wait
(`retry_min`, doubling to `retry_max`) — without the gateway restarting. Status and
/health say why it is not reading: the port is not there, is busy (another program
holds it: opened exclusively), refuses the gateway, or went away.

A subclass gives `session(port)`: it returns (or raises `PortGone`) when the port
failed; `self.gone(why)` says why.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import serial

from gateway.clock import Clock
from gateway.health.stats import Stats
from gateway.sources.base import Source, SourceContext, Submit
from gateway.sources.port_config import PortSourceConfig

log = logging.getLogger("gateway.serial")

#: how long one read waits for a byte: the longest a stop waits for the thread
READ_WAIT = 0.2

Opener = Callable[..., Any]

#: what pyserial and the OS raise for a port that failed
PORT_ERRORS = (OSError, serial.SerialException)


class PortGone(Exception):
    """The session cannot go on on this port (it went away, or the device does not answer
    as it must): the port is closed and opened again after a wait."""


class PortSource(Source):
    """A source on one serial port (see the module docstring)."""

    #: what status calls the thing on the port ("serial source", "ELM327 adapter")
    what = "serial source"

    @classmethod
    def build(cls, config: Any, context: SourceContext) -> PortSource:
        return cls(config, context.clock, context.stats, context.submit)

    def __init__(self, config: PortSourceConfig, clock: Clock, stats: Stats, submit: Submit,
                 opener: Opener = serial.serial_for_url) -> None:
        super().__init__(config.name)
        self.port_name = config.port
        self.baudrate = config.baudrate
        self.retry_min = float(config.retry_min)
        self.retry_max = float(config.retry_max)
        self.clock = clock
        self.stats = stats
        self.submit = submit
        self.opener = opener
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._open = False
        self._why = "not opened yet"
        self.opened = 0  # times the port was opened (a reopen after it went counts)

    # -- the Source contract ----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._guarded, name=f"{self.kind}-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def ready(self) -> bool:
        return self._open

    def problem(self) -> str:
        return "" if self._open else f"{self.what} {self.name}: {self._why}"

    def status(self) -> dict[str, Any]:
        return {"port": self.port_name, "problem": "" if self._open else self._why,
                "opened": self.opened}

    # -- for subclasses -----------------------------------------------------------------------

    def session(self, port: Any) -> None:
        """Use the open port until it fails (return or raise PortGone) or `stopping`."""
        raise NotImplementedError

    def gone(self, why: str) -> None:
        """Say why the port is not in use (status, /health) and log it once."""
        if why != self._why:
            log.warning("%s %s: %s; trying again", self.what, self.name, why)
        self._why = why
        self._open = False

    # -- the thread ---------------------------------------------------------------------------

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # a bug: the supervisor sees it and stops the gateway
            self.failure = exc
            log.exception("%s %s died", self.what, self.name)

    def _run(self) -> None:
        wait = self.retry_min
        while not self.stopping.is_set():
            port = self._open_port()
            if port is None:
                self.stopping.wait(wait)
                wait = min(wait * 2, self.retry_max)
                continue
            try:
                self.session(port)
                wait = self.retry_min  # it worked for a while: the next try comes soon
            except PortGone as exc:
                self.gone(str(exc))
                wait = min(wait * 2, self.retry_max)  # opened, but of no use: back off
            except PORT_ERRORS as exc:
                self.gone(f"{self.port_name} went away: {words(exc)}")
                wait = self.retry_min
            finally:
                self._open = False
                try:
                    port.close()
                except PORT_ERRORS:
                    pass
            if not self.stopping.is_set():
                self.stopping.wait(wait)

    def _open_port(self) -> Any | None:
        try:
            port = self.opener(self.port_name, baudrate=self.baudrate, timeout=READ_WAIT,
                               exclusive=True)
        except (*PORT_ERRORS, ValueError) as exc:
            self.gone(f"cannot open {self.port_name}: {words(exc)}")
            return None
        self._open = True
        self.opened += 1
        log.info("%s %s: %s at %d baud", self.what, self.name, self.port_name, self.baudrate)
        return port


def words(exc: BaseException) -> str:
    """An error in a sentence: pyserial's own text, or the OS error's."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
