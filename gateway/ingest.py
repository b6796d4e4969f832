"""The ingest stage: raw messages -> decode -> group commit -> acknowledge.

Runs in its own thread. A source hands over (topic, payload, received, ack)
cheaply; this thread decodes in batches, commits one transaction per batch
(every `commit_rows` readings or `commit_interval` seconds), and only then
calls each message's `ack` — so the broker keeps every message the store has
not yet made durable.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.logthrottle import Throttled
from gateway.model import Reading
from gateway.profiles.decoder import UNKNOWN_TOPIC, Decoder
from gateway.stats import Stats
from gateway.store.outbox import Outbox

log = logging.getLogger("gateway.ingest")

Ack = Callable[[], None]


@dataclass(slots=True)
class _Message:
    topic: str
    payload: bytes
    received: float
    ack: Ack | None


_STOP = object()


class Ingest:
    """Owns the store's write connection; everything that enters the store passes here."""

    def __init__(self, outbox_factory: Callable[[], Outbox], decoder: Decoder, stats: Stats,
                 commit_interval: float = 0.25, commit_rows: int = 5000,
                 clock: Callable[[], float] = time.time) -> None:
        self._outbox_factory = outbox_factory
        self.decoder = decoder
        self.stats = stats
        self.commit_interval = commit_interval
        self.commit_rows = commit_rows
        self.clock = clock
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._throttle = Throttled(log)
        self.purge_every = 2.0
        self.on_commit: Callable[[int], None] | None = None
        self.store_ok = threading.Event()
        self.store_ok.set()

    # -- called from other threads ---------------------------------------------------------

    def submit(self, topic: str, payload: bytes, received: float, ack: Ack | None) -> None:
        """Hand over one message. Cheap: safe to call from a network callback."""
        self._queue.put(_Message(topic, payload, received, ack))

    def submit_readings(self, readings: Sequence[Reading]) -> None:
        """Store readings the gateway made itself (self-metrics)."""
        self._queue.put(list(readings))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what has arrived, acknowledge it, and stop."""
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the ingest thread -----------------------------------------------------------------

    def _run(self) -> None:
        outbox = self._outbox_factory()
        last_purge = time.monotonic()
        stopping = False
        try:
            while not stopping:
                batch, stopping = self._collect()
                if batch:
                    self._process(outbox, batch)
                if time.monotonic() - last_purge >= self.purge_every:
                    last_purge = time.monotonic()
                    self._purge(outbox)
        finally:
            outbox.close()

    def _collect(self) -> tuple[list[object], bool]:
        """Wait for the first item, then gather until the batch is full or due."""
        try:
            first = self._queue.get(timeout=self.purge_every)
        except queue.Empty:
            return [], False
        if first is _STOP:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self.commit_interval
        while len(batch) < self.commit_rows:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get_nowait() if remaining <= 0 else \
                    self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
            if remaining <= 0:
                # Due: take only what is already queued, then commit.
                continue
        return batch, False

    def _process(self, outbox: Outbox, batch: list[object]) -> None:
        readings: list[Reading] = []
        acks: list[Ack] = []
        problems: Counter[str] = Counter()
        received = ignored = decoded = 0
        decode = self.decoder.decode
        for item in batch:
            if isinstance(item, list):
                readings.extend(item)
                continue
            assert isinstance(item, _Message)
            received += 1
            if item.ack is not None:
                acks.append(item.ack)
            result = decode(item.topic, item.payload, item.received)
            readings.extend(result.readings)
            if result.readings:
                decoded += 1
            if result.ignored:
                ignored += 1
            for reason, detail in result.problems:
                problems[reason] += 1
                level = logging.DEBUG if reason == UNKNOWN_TOPIC else logging.WARNING
                self._throttle.log(level, f"{reason}:{result.device}", f"{reason}: {detail}")
        self._commit(outbox, readings)
        for ack in acks:
            ack()
        stats = self.stats
        stats.inc("gateway.received", received)
        stats.inc("gateway.decoded", decoded)
        stats.inc("gateway.ignored", ignored)
        for reason, n in problems.items():
            stats.inc("gateway.undecodable", n, reason=reason)
        stats.inc("gateway.stored", len(readings))
        if self.on_commit is not None:
            self.on_commit(len(readings))

    def _commit(self, outbox: Outbox, readings: list[Reading]) -> None:
        """Commit, retrying until it works: unacknowledged messages stay with the broker."""
        delay = 0.5
        while True:
            try:
                outbox.append(readings)
                outbox.commit()
                if not self.store_ok.is_set():
                    log.warning("store writable again; ingest resumed")
                    self.store_ok.set()
                return
            except sqlite3.Error as exc:
                outbox.rollback()
                self.store_ok.clear()
                self.stats.inc("gateway.store.errors", error=type(exc).__name__)
                self._throttle.log(logging.ERROR, "store-commit",
                                   f"cannot commit to the store ({exc}); holding "
                                   f"{len(readings)} readings and not acknowledging their "
                                   f"messages, retrying in {delay:.1f}s")
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _purge(self, outbox: Outbox) -> None:
        try:
            deleted = outbox.purge()
        except sqlite3.Error as exc:
            self._throttle.log(logging.ERROR, "store-purge", f"cannot purge the store: {exc}")
            return
        if deleted:
            self.stats.inc("gateway.store.purged", deleted)
