"""The ingest stage: raw messages -> decode -> group commit -> acknowledge.

Runs in its own thread. A source hands over (topic, payload, received, ack)
cheaply; this thread decodes as messages arrive, commits one transaction per
batch, and only then calls each message's `ack` — so the broker keeps every
message the store has not yet made durable.

A batch is committed when it holds `commit_rows` readings, when it holds half
of the `window` of unacknowledged messages (so the broker can send the other
half meanwhile), or `commit_interval` seconds after its first message.

Memory is bounded here, not only by the broker's flow control: at most
`window` messages are held unacknowledged. When that many wait, `submit`
blocks the source's network thread, which stops reading the socket, so TCP
pushes back on the broker.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway.logthrottle import Throttled
from gateway.model import Reading
from gateway.profiles.decoder import UNKNOWN_TOPIC, Decoder
from gateway.state import LatestValues
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


@dataclass
class _Batch:
    readings: list[Reading] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    messages: int = 0
    decoded: int = 0
    ignored: int = 0
    problems: Counter[str] = field(default_factory=Counter)


_STOP = object()


class Ingest:
    """Owns the store's write connection; everything that enters the store passes here."""

    def __init__(self, outbox_factory: Callable[[], Outbox], decoder: Decoder, stats: Stats,
                 commit_interval: float = 0.25, commit_rows: int = 5000,
                 window: int = 2000) -> None:
        self._outbox_factory = outbox_factory
        self.decoder = decoder
        self.stats = stats
        self.commit_interval = commit_interval
        self.commit_rows = commit_rows
        self.window = max(1, window)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._slots = threading.Semaphore(self.window)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._throttle = Throttled(log)
        self.purge_every = 2.0
        self.store_ok = threading.Event()
        self.store_ok.set()
        #: each device's newest accepted readings (status, demo view, monitors)
        self.latest = LatestValues(decoder.base_tags)
        #: called (in the ingest thread) after each commit, e.g. to wake forwarders
        self.on_commit: Callable[[], None] | None = None

    # -- called from other threads ---------------------------------------------------------

    def submit(self, topic: str, payload: bytes, received: float, ack: Ack | None) -> None:
        """Hand over one message. Blocks while `window` messages await their commit."""
        while not self._slots.acquire(timeout=0.5):
            if self._stopping.is_set():
                return  # not acknowledged: the broker sends it again next time
        self._queue.put(_Message(topic, payload, received, ack))

    def submit_readings(self, readings: Sequence[Reading]) -> None:
        """Store readings the gateway made itself (self-metrics)."""
        self._queue.put(list(readings))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what has arrived, acknowledge it, and stop."""
        self._stopping.set()
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
                batch = _Batch()
                stopping = self._fill(batch)
                if batch.messages or batch.readings:
                    self._finish(outbox, batch)
                if time.monotonic() - last_purge >= self.purge_every:
                    last_purge = time.monotonic()
                    self._purge(outbox)
        finally:
            outbox.close()

    def _fill(self, batch: _Batch) -> bool:
        """Take and decode items until the batch is due. Returns True when told to stop."""
        try:
            item = self._queue.get(timeout=self.purge_every)
        except queue.Empty:
            return False
        deadline = time.monotonic() + self.commit_interval
        half_window = max(1, self.window // 2)
        while True:
            if item is _STOP:
                return True
            self._take(item, batch)
            if len(batch.readings) >= self.commit_rows or batch.messages >= half_window:
                return False
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get_nowait() if remaining <= 0 else \
                    self._queue.get(timeout=remaining)
            except queue.Empty:
                return False

    def _take(self, item: object, batch: _Batch) -> None:
        if isinstance(item, list):
            batch.readings.extend(item)
            return
        assert isinstance(item, _Message)
        batch.messages += 1
        if item.ack is not None:
            batch.acks.append(item.ack)
        result = self.decoder.decode(item.topic, item.payload, item.received)
        if result.readings:
            batch.readings.extend(result.readings)
            batch.decoded += 1
        if result.ignored:
            batch.ignored += 1
        for reason, detail in result.problems:
            batch.problems[reason] += 1
            # A topic no device reads, under a wildcard filter: worth a line, not an alarm.
            level = logging.INFO if reason == UNKNOWN_TOPIC else logging.WARNING
            self._throttle.log(level, f"{reason}:{result.device}", f"{reason}: {detail}")

    def _finish(self, outbox: Outbox, batch: _Batch) -> None:
        self._commit(outbox, batch.readings)
        for ack in batch.acks:
            ack()
        self.latest.update(batch.readings)
        if self.on_commit is not None and batch.readings:
            self.on_commit()
        for _ in range(batch.messages):
            self._slots.release()
        stats = self.stats
        stats.set("gateway.ingest.queue", self._queue.qsize())
        stats.set("gateway.ingest.batch_messages", batch.messages)
        stats.inc("gateway.received", batch.messages)
        stats.inc("gateway.decoded", batch.decoded)
        stats.inc("gateway.ignored", batch.ignored)
        for reason, n in batch.problems.items():
            stats.inc("gateway.undecodable", n, reason=reason)
        stats.inc("gateway.stored", len(batch.readings))

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
