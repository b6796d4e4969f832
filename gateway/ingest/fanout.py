"""After each commit, the committed readings go to whoever listens.

The ingest stage calls `Fanout.committed(readings)` once a batch is durable
(and acknowledged), and `Fanout.retained(readings)` for the last known state a
broker hands over on subscribing (never stored, see the ingest module). Who
listens: the latest-value state, the forwarders' wake-up and, next, the
monitors' windows. They never see a reading the store did not accept.

Listeners are called in the ingest thread, so a listener must be quick (a dict
update, a wake-up). Anything slower goes behind `Buffered`: a bounded queue
drained by a thread of its own, which drops whole batches when it falls
behind, counted as `gateway.fanout_dropped{listener}`, rather than slow the
commit path (readings are safe in the store either way: a drop costs a
listener its view, never a reading).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from gateway.health.stats import Stats
from gateway.model import Reading

log = logging.getLogger("gateway.fanout")


class Listener(Protocol):
    def committed(self, readings: Sequence[Reading]) -> None:
        """Readings the store accepted, in commit order."""

    def retained(self, readings: Sequence[Reading]) -> None:
        """A retained message's readings: last known state, of unknown age, not stored."""


class Fanout:
    """The listeners of one ingest stage. A listener that raises is logged and kept."""

    def __init__(self, stats: Stats | None = None) -> None:
        self.listeners: list[Listener] = []
        self.stats = stats or Stats()

    def add(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def committed(self, readings: Sequence[Reading]) -> None:
        if readings:
            for listener in self.listeners:
                self._call(listener, listener.committed, readings)

    def retained(self, readings: Sequence[Reading]) -> None:
        if readings:
            for listener in self.listeners:
                self._call(listener, listener.retained, readings)

    def _call(self, listener: Listener, method: Callable[[Sequence[Reading]], None],
              readings: Sequence[Reading]) -> None:
        try:
            method(readings)
        except Exception:
            name = type(listener).__name__
            self.stats.inc("gateway.fanout_errors", listener=name)
            log.exception("listener %s failed on %d readings (they are stored; it missed "
                          "them)", name, len(readings))


class OnCommit:
    """A listener that calls `wake()` after each commit (the forwarders' wake-up)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake

    def committed(self, readings: Sequence[Reading]) -> None:
        self.wake()

    def retained(self, readings: Sequence[Reading]) -> None:
        pass


class Buffered:
    """A slow listener behind a bounded queue and a thread of its own."""

    def __init__(self, inner: Listener, name: str, stats: Stats, batches: int = 1000) -> None:
        self.inner = inner
        self.name = name
        self.stats = stats
        self._queue: queue.Queue[tuple[bool, Sequence[Reading]] | None] = queue.Queue(batches)
        self._thread = threading.Thread(target=self._drain, name=f"listener-{name}",
                                        daemon=True)
        self._thread.start()

    def committed(self, readings: Sequence[Reading]) -> None:
        self._put(True, readings)

    def retained(self, readings: Sequence[Reading]) -> None:
        self._put(False, readings)

    def _put(self, committed: bool, readings: Sequence[Reading]) -> None:
        try:
            self._queue.put_nowait((committed, readings))
        except queue.Full:
            self.stats.inc("gateway.fanout_dropped", len(readings), listener=self.name)

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            committed, readings = item
            try:
                (self.inner.committed if committed else self.inner.retained)(readings)
            except Exception:
                self.stats.inc("gateway.fanout_errors", listener=self.name)
                log.exception("listener %s failed on %d readings", self.name, len(readings))

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return  # stuck in its listener: a daemon thread, it ends with the process
        self._thread.join(timeout)
