"""The ingest stage: raw messages -> decode -> group commit -> acknowledge.

Runs in its own thread. A source hands over a RawMessage and its `ack`
cheaply; this thread decodes as messages arrive, commits one transaction per
batch, and only then calls each message's `ack` — so the broker keeps every
message the store has not yet made durable.

A retained message the broker delivered on subscribing is the last known
state of its topic, not a new reading: it updates the latest values (marked
retained) and is acknowledged with its batch, but stores nothing, unless its
profile says that topic's retained messages are readings (`retained: reading`).
A payload time the decoder did not believe (a device clock far off) is counted
as `gateway.device_time_rejected` and logged, rate-limited; the readings keep
their receive time.

A batch is committed when it holds `commit_rows` readings, when it holds half
of the `window` of unacknowledged messages (so the broker can send the other
half meanwhile), when messages stop coming for a moment after a run of them
(a broker that allows fewer unacknowledged messages than our window waits for
the commit), or `commit_interval` seconds after its first message. Each commit
costs the SD card a page or two and an fsync, whatever it holds: at a hall's
few messages a second, the interval is what keeps the writes down.

Memory is bounded here, not only by the broker's flow control: at most
`window` messages are held unacknowledged. When that many wait, `submit`
blocks the source's network thread, which stops reading the socket, so TCP
pushes back on the broker.

When a commit fails (the disk is full, the file is locked), nothing is
acknowledged: the batch is held, messages already received keep being decoded
into it (the latest values and whatever else listens see them once committed),
housekeeping runs between retries (purging what sinks confirmed may make room),
and the commit is retried until it works. A corrupt store stops ingest with
`corrupt` set, for the service to recover it.

Between batches this thread also keeps the store within its bounds
(`gateway.store.housekeeping`), a short round at a time.

One message, one outcome: each is counted once as `gateway.decoded`,
`gateway.partly_decoded`, `gateway.ignored` or `gateway.undecodable{reason}`,
and `gateway.received` is their sum. One bad message never stops this thread:
if decoding it raises (a bug), it is counted as undecodable `decoder_error`,
logged with its topic and first bytes, kept in `recent_problems`, and
acknowledged like any other, so the broker does not send it again and again.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.clock import SYSTEM, Clock
from gateway.config.schema import StoreSection
from gateway.health.stats import Stats
from gateway.ingest.fanout import Fanout
from gateway.ingest.logthrottle import Throttled
from gateway.ingest.trips import Trips
from gateway.model import RawMessage, Reading
from gateway.profiles.decoder import (
    DECODED,
    DECODER_ERROR,
    IGNORED,
    PARTLY_DECODED,
    UNKNOWN_TOPIC,
    Decoded,
    Decoder,
    unstorable,
)
from gateway.store.bounds import Space
from gateway.store.errors import StoreFault, classify
from gateway.store.housekeeping import Housekeeper, Round
from gateway.store.inflight import InFlight
from gateway.store.outbox import Outbox

log = logging.getLogger("gateway.ingest")

Ack = Callable[[], None]


@dataclass
class _Batch:
    readings: list[Reading] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    messages: int = 0
    own: int = 0  # self-metric readings
    #: messages by (outcome, reason): each message counted once; they add up to `messages`
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: unreadable values in partly decoded messages, by reason (values, not messages)
    field_problems: Counter[str] = field(default_factory=Counter)


_STOP = object()
#: while the store cannot be written, keep at most this many self-metric readings
OWN_READINGS_HELD = 5000
#: with this many messages in a batch, a pause this long commits it before its interval
QUIET_AFTER = 16
QUIET_GAP = 0.02
#: housekeeping rounds: this often when idle, this soon again while work is left
HOUSEKEEPING_EVERY = 5.0
HOUSEKEEPING_BUSY = 0.05
#: how many kinds (topic, reason) of messages not fully decoded are kept for status
RECENT_PROBLEMS = 10
#: how much of such a message's payload is kept and logged (escaped)
PAYLOAD_EXCERPT = 100
#: counted from the start, so /metrics shows them at 0 (undecodable has a reason label)
#: a retained message delivered on subscribing: the last known state, stored as no reading
RETAINED = "retained"
OUTCOMES = (DECODED, PARTLY_DECODED, IGNORED, RETAINED)
#: what appending a reading the store cannot hold raises (see `_drop_unstorable`)
_UNSTORABLE = (UnicodeError, ValueError, TypeError, OverflowError, sqlite3.IntegrityError,
               sqlite3.InterfaceError)


class Ingest:
    """Owns the store's write connection; everything that enters the store passes here."""

    def __init__(self, outbox_factory: Callable[[], Outbox], decoder: Decoder, stats: Stats,
                 commit_interval: float = 1.0, commit_rows: int = 5000,
                 window: int = 2000, store: StoreSection | None = None,
                 inflight: InFlight | None = None,
                 clock: Clock = SYSTEM, log_interval: float = 60.0) -> None:
        self._outbox_factory = outbox_factory
        self.decoder = decoder
        self.stats = stats
        self.commit_interval = commit_interval
        self.commit_rows = commit_rows
        self.window = max(1, window)
        self.store_config = store or StoreSection()
        self.inflight = inflight or InFlight()
        self.clock = clock
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._slots = threading.Semaphore(self.window)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._throttle = Throttled(log, log_interval, clock.monotonic)
        # The last message of each of the last few (topic, reason) kinds that were not
        # fully decoded, unknown topics aside: by kind, so a flood of one kind does
        # not push a rare one (a decoder_error) out of sight.
        self._recent: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._recent_lock = threading.Lock()
        stats.inc("gateway.received", 0)
        for outcome in OUTCOMES:
            stats.inc(f"gateway.{outcome}", 0)
        self.store_ok = threading.Event()
        self.store_ok.set()
        #: why the store cannot be written now ("" when it can): disk_full, locked, ...
        self.store_fault = ""
        #: set when the store turned out corrupt: ingest has stopped, nothing acknowledged
        self.corrupt: StoreFault | None = None
        #: what ended the thread when it was neither a stop nor a damaged store (a bug):
        #: the gateway's supervisor reports it and stops the process (gateway.app.supervise)
        self.died: BaseException | None = None
        self.stopped = threading.Event()
        #: since when (monotonic) it has been committing or housekeeping; None while it
        #: waits for messages: how the watchdog tells a stuck ingest from an idle one
        self.busy_since: float | None = None
        self.housekeeper: Housekeeper | None = None
        #: who hears of committed readings: latest values, forwarders' wake-up, monitors
        #: (gateway.ingest.fanout)
        self.fanout = Fanout(stats)
        #: tags a vehicle's readings with its trip (gateway.ingest.trips), when configured
        self.trips: Trips | None = None

    # -- called from other threads ---------------------------------------------------------

    def submit(self, message: RawMessage, ack: Ack | None) -> None:
        """Hand over one message. Blocks while `window` messages await their commit."""
        while not self._slots.acquire(timeout=0.5):
            if self._stopping.is_set():
                return  # not acknowledged: the broker sends it again next time
        self._queue.put((message, ack))

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

    def _open(self) -> Outbox | None:
        """Open the store, waiting out a full disk or a lock; None if corrupt or stopping."""
        delay = 0.5
        while True:
            try:
                return self._outbox_factory()
            except sqlite3.Error as exc:
                fault = classify(exc)
                if fault.corrupt:
                    self._fail(fault, exc)
                    return None
                self._not_writable(fault)
                self._throttle.log(logging.ERROR, "store-open",
                                   f"cannot open the store: {fault.explain(exc)}; nothing is "
                                   f"acknowledged meanwhile; retrying in {delay:.1f}s")
            if self._stopping.wait(delay):
                return None
            delay = min(delay * 2, 30.0)

    def _run(self) -> None:
        outbox = self._open()
        if outbox is None:
            self.stopped.set()
            return
        self.housekeeper = Housekeeper(outbox.conn, outbox.path, self.store_config,
                                       self.inflight, self.clock, outbox.flush)
        if self.store_ok.is_set():
            self.stats.set("gateway.store_writable", 1)
        next_round = self.clock.monotonic()
        stopping = False
        try:
            while not stopping:
                batch = _Batch()
                wait = min(next_round - self.clock.monotonic(), self._throttle.due_in())
                stopping = self._fill(batch, max(0.0, wait))
                self.busy_since = self.clock.monotonic()
                if (batch.messages or batch.readings) and not self._finish(outbox, batch):
                    return
                self._throttle.flush()  # held-back warnings are told even if none follow
                if self.clock.monotonic() >= next_round and not stopping:
                    busy = self._housekeep(outbox)
                    next_round = self.clock.monotonic() + (
                        HOUSEKEEPING_BUSY if busy else HOUSEKEEPING_EVERY)
                self.busy_since = None
        except sqlite3.Error as exc:
            fault = classify(exc)
            if fault.corrupt:
                self._fail(fault, exc)
            else:
                self._died(exc)
        except Exception as exc:  # noqa: BLE001 - told to the supervisor, not swallowed
            self._died(exc)
        finally:
            outbox.close()
            self._throttle.flush(force=True)
            self.stopped.set()

    def _died(self, exc: BaseException) -> None:
        """Nothing more is taken or acknowledged: what is held stays with the broker."""
        self.died = exc
        self._stopping.set()

    def _not_writable(self, fault: StoreFault) -> None:
        """The store refused a write: say so in status and self-metrics until it takes one."""
        self.store_ok.clear()
        self.store_fault = fault.reason
        self.stats.set("gateway.store_writable", 0)
        self.stats.inc("gateway.store_errors", error=fault.reason)

    def _fail(self, fault: StoreFault, exc: Exception) -> None:
        """The store is corrupt (or cannot be opened): stop taking messages, say why."""
        self.corrupt = fault
        self._not_writable(fault)
        log.critical("store %s: %s; ingest stopped, nothing more is acknowledged",
                     fault.reason, exc)
        self._stopping.set()
        self.stopped.set()

    def _fill(self, batch: _Batch, wait: float) -> bool:
        """Take and decode items until the batch is due. Returns True when told to stop.

        Waits at most `wait` seconds for the first item (housekeeping is due then).
        """
        try:
            item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
        except queue.Empty:
            return False
        deadline = self.clock.monotonic() + self.commit_interval
        half_window = max(1, self.window // 2)
        while True:
            if item is _STOP:
                return True
            self._take(item, batch)
            if len(batch.readings) >= self.commit_rows or batch.messages >= half_window:
                return False
            remaining = deadline - self.clock.monotonic()
            # A broker that lets fewer messages wait for their acknowledgement than we
            # would take (Mosquitto's max_inflight_messages, 20 by default) stops
            # sending until we commit: a pause after a run of messages commits early.
            quiet = batch.messages >= QUIET_AFTER and remaining > QUIET_GAP
            try:
                item = self._queue.get_nowait() if remaining <= 0 else \
                    self._queue.get(timeout=QUIET_GAP if quiet else remaining)
            except queue.Empty:
                return False

    def _take(self, item: object, batch: _Batch) -> None:
        if isinstance(item, list):
            if not self.store_ok.is_set() and batch.own >= OWN_READINGS_HELD:
                # The store is failing: the gateway's own figures are the one thing
                # not worth holding without bound. Counted; /metrics still shows them.
                self.stats.inc("gateway.selfmetrics_dropped", len(item))
                return
            batch.readings.extend(item)
            batch.own += len(item)
            return
        message, ack = item  # type: ignore[misc]  # what submit() queued
        assert isinstance(message, RawMessage)
        batch.messages += 1
        if ack is not None:
            batch.acks.append(ack)
        try:
            result = self.decoder.decode(message.origin, message.payload, message.received,
                                         message.kind)
        except Exception as exc:  # noqa: BLE001 - one bad message must never stop ingest
            result = self._decoder_error(message, exc)
        if message.retained and result.readings and not result.retained_is_reading:
            batch.outcomes[RETAINED, ""] += 1
            self._take_retained(result)
            return
        if result.time_rejected is not None:
            self._device_clock_off(result.device, *result.time_rejected)
        outcome = result.outcome
        batch.outcomes[outcome, result.reason] += 1
        if result.readings:
            if self.trips is not None:
                self.trips.tag(result.readings)
            batch.readings.extend(result.readings)
        if result.problems:
            self._problems(message, result, outcome, batch)

    def _decoder_error(self, item: RawMessage, exc: Exception) -> Decoded:
        """decode() raised: a bug, not the device's fault. Count, log, keep and acknowledge."""
        detail = (f"{type(exc).__name__}: {_short(str(exc))} while decoding the payload on "
                  f"{_short(item.origin)} ({len(item.payload)} bytes, first bytes "
                  f"{_first_bytes(item.payload)})")
        self._throttle.log(logging.ERROR, f"{DECODER_ERROR}:{type(exc).__name__}",
                           f"{DECODER_ERROR}: {detail}; the message is counted as undecodable "
                           "and acknowledged, ingest goes on", exc_info=True)
        return Decoded(problems=[(DECODER_ERROR, detail)])

    def _problems(self, item: RawMessage, result: Decoded, outcome: str, batch: _Batch) -> None:
        if outcome == PARTLY_DECODED:
            for reason, _ in result.problems:
                batch.field_problems[reason] += 1
        for reason, detail in result.problems:
            if reason == DECODER_ERROR:
                continue  # logged with its traceback already
            # A topic no device reads, under a wildcard filter: worth a line, not an alarm.
            level = logging.INFO if reason == UNKNOWN_TOPIC else logging.WARNING
            self._throttle.log(level, f"{reason}:{result.device}", f"{reason}: {detail}")
        reason, detail = result.problems[0]
        if reason != UNKNOWN_TOPIC:
            self._keep(item, result, outcome, reason, detail)

    def _keep(self, item: RawMessage, result: Decoded, outcome: str, reason: str,
              detail: str) -> None:
        key = (item.origin, reason)
        with self._recent_lock:
            old = self._recent.pop(key, None)
            self._recent[key] = {
                "at": item.received, "topic": item.origin[:200], "device": result.device,
                "outcome": outcome, "reason": reason, "detail": detail[:300],
                "problems": len(result.problems), "bytes": len(item.payload),
                "payload": _first_bytes(item.payload),
                "messages": (old["messages"] if old else 0) + 1}
            if len(self._recent) > RECENT_PROBLEMS:
                self._recent.popitem(last=False)

    @property
    def recent_problems(self) -> list[dict[str, Any]]:
        """The last message of each recent (topic, reason) not fully decoded, oldest first,
        with how many such messages there were while it was kept (`messages`)."""
        with self._recent_lock:
            return [dict(entry) for entry in self._recent.values()]

    def _take_retained(self, result: Decoded) -> None:
        """A retained message delivered on subscribing: the last known state, nothing stored.

        One outcome per message (`retained`); problems in the part that could not
        be read are logged, not counted again as undecodable. Its time, old by
        nature, is not judged: a retained copy from last week is no wrong clock.
        """
        self.fanout.retained(result.readings)
        for reason, detail in result.problems:
            self._throttle.log(logging.WARNING, f"{reason}:{result.device}",
                               f"{reason} (in a retained message): {detail}")

    def _device_clock_off(self, device: str, reason: str, detail: str) -> None:
        self.stats.inc("gateway.device_time_rejected", device=device, reason=reason)
        self._throttle.log(logging.WARNING, f"device-time-{reason}:{device}",
                           f"{detail}: not believed, readings stamped on receipt instead "
                           "(see gateway.device_time; `time: receive` on the device ignores "
                           "its clock)")

    def _finish(self, outbox: Outbox, batch: _Batch) -> bool:
        """Commit the batch, then acknowledge it. False when ingest must stop unacknowledged."""
        if not self._commit(outbox, batch):
            return False
        for ack in batch.acks:
            ack()
        self.fanout.committed(batch.readings)
        for _ in range(batch.messages):
            self._slots.release()
        stats = self.stats
        stats.set("gateway.ingest_queue", self._queue.qsize())
        stats.set("gateway.ingest_batch_messages", batch.messages)
        stats.inc("gateway.received", batch.messages)
        for (outcome, reason), n in batch.outcomes.items():
            if reason:
                stats.inc(f"gateway.{outcome}", n, reason=reason)
            else:
                stats.inc(f"gateway.{outcome}", n)
        for reason, n in batch.field_problems.items():
            stats.inc("gateway.field_problems", n, reason=reason)
        stats.inc("gateway.stored", len(batch.readings))
        return True

    def _commit(self, outbox: Outbox, batch: _Batch) -> bool:
        """Commit, retrying until it works: unacknowledged messages stay with the broker.

        Returns False, with nothing committed or acknowledged, when ingest is
        stopping or the store turned out corrupt.
        """
        delay = 0.5
        while True:
            try:
                outbox.append(batch.readings)
                outbox.commit()
                if outbox.shifted:
                    self._clock_went_back(outbox)
                if not self.store_ok.is_set():
                    log.warning("store writable again (%s is over); ingest resumed, "
                                "%d held readings committed", self.store_fault,
                                len(batch.readings))
                    self.store_fault = ""
                    self.stats.set("gateway.store_writable", 1)
                    self.store_ok.set()
                return True
            except (sqlite3.Error, *_UNSTORABLE) as exc:
                outbox.rollback()
                # A reading the store cannot hold (text it cannot encode, a NaN in a NOT
                # NULL column) must neither hold back the batch's good readings nor stop
                # ingest. The decoder never makes one; this is for whatever else might.
                if isinstance(exc, _UNSTORABLE) and self._drop_unstorable(batch, exc):
                    continue
                if not isinstance(exc, sqlite3.Error):
                    raise
                fault = classify(exc)
                if fault.corrupt:
                    self._fail(fault, exc)
                    return False
                self._not_writable(fault)
                self._throttle.log(logging.ERROR, "store-commit",
                                   f"cannot commit to the store: {fault.explain(exc)}; holding "
                                   f"{batch.messages} messages ({len(batch.readings)} readings) "
                                   "unacknowledged, so the broker keeps them; retrying in "
                                   f"{delay:.1f}s")
            # Keep decoding the messages already received (the window) into the held
            # batch; nobody hears of them until they are committed.
            self._housekeep(outbox)
            if self._absorb(batch, delay):
                return False
            delay = min(delay * 2, 30.0)

    def _drop_unstorable(self, batch: _Batch, exc: Exception) -> int:
        """Take out of the batch the readings the store cannot hold; how many there were."""
        kept: list[Reading] = []
        dropped: list[tuple[Reading, str]] = []
        for r in batch.readings:
            why = unstorable(r)
            if why is None:
                kept.append(r)
            else:
                dropped.append((r, why))
        if not dropped:
            return 0
        batch.readings = kept
        self.stats.inc("gateway.readings_unstorable", len(dropped))
        reading, why = dropped[0]
        self._throttle.log(logging.ERROR, "unstorable",
                           f"the store refused {len(dropped)} reading(s) it cannot hold "
                           f"({type(exc).__name__}), e.g. {_short(repr(reading.metric))} of "
                           f"device {_short(repr(reading.tags.get('device', '')))}: {why}; "
                           "they are counted as gateway.readings_unstorable and the other "
                           f"{len(kept)} are committed")
        return len(dropped)

    def _clock_went_back(self, outbox: Outbox) -> None:
        self.stats.inc("gateway.store_timestamps_shifted", outbox.shifted)
        self._throttle.log(logging.WARNING, "clock-back",
                           f"the clock went back (by up to {outbox.max_shift_ms / 1000:.1f} s): "
                           f"{outbox.shifted} reading(s) stamped just after their series' last "
                           "one, so each series stays in order and no point overwrites another")
        outbox.shifted = 0
        outbox.max_shift_ms = 0

    def _absorb(self, batch: _Batch, seconds: float) -> bool:
        """Take queued items into the held batch for `seconds`. True when told to stop."""
        deadline = self.clock.monotonic() + seconds
        while True:
            if self._stopping.is_set():
                return True
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return False
            try:
                item = self._queue.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if item is _STOP:
                return True
            self._take(item, batch)

    def _housekeep(self, outbox: Outbox) -> bool:
        """One housekeeping round; returns True when work is left for another soon."""
        if self.housekeeper is None:
            return False
        try:
            done = self.housekeeper.run(outbox.purge, urgent=not self.store_ok.is_set())
        except sqlite3.Error as exc:
            fault = classify(exc)
            if fault.corrupt:
                raise
            self._throttle.log(logging.ERROR, "store-housekeeping",
                               f"store housekeeping failed: {fault.explain(exc)}")
            return False
        except Exception:  # a housekeeping bug must not stop ingest
            log.exception("store housekeeping failed; ingest goes on")
            return False
        self._report(done)
        return done.busy

    def _report(self, done: Round) -> None:
        stats = self.stats
        if done.purged:
            stats.inc("gateway.store_purged", done.purged)
        space = done.space
        if space is not None:
            stats.set("gateway.store_bytes", space.used)
            stats.set("gateway.store_file_bytes", space.file + space.wal)
            stats.set("gateway.store_budget_bytes", space.budget)
            stats.set("gateway.store_fs_free_bytes", space.fs_free)
        for (reason, priority), n in done.evicted.items():
            stats.inc("gateway.store_evicted", n, reason=reason, priority=priority)
            self._throttle.log(logging.WARNING, f"evict-{reason}-{priority}",
                               f"store: evicted {n} {priority}-priority reading(s) "
                               f"({reason}); {_space_words(space)}; counted per sink in "
                               "gateway status")
        for priority, n in done.compacted.items():
            stats.inc("gateway.store_compacted", n, priority=priority)
            self._throttle.log(logging.INFO, f"compact-{priority}",
                               f"store: compacted old {priority}-priority readings "
                               f"({n} rows folded into rollups); {_space_words(space)}")
        if done.dead_letters_evicted:
            stats.inc("gateway.store_dead_letters_evicted", done.dead_letters_evicted)


def _short(text: str, limit: int = 120) -> str:
    """Text for a log line or status: bounded, and quoted so control characters show."""
    quoted = repr(text)
    return quoted if len(quoted) <= limit else quoted[:limit - 4] + "...'"


def _first_bytes(payload: bytes) -> str:
    """The start of a payload, escaped (b'...'), with how much more there was."""
    head = repr(payload[:PAYLOAD_EXCERPT])
    more = len(payload) - PAYLOAD_EXCERPT
    return head + (f" (+{more} bytes)" if more > 0 else "")


def _space_words(space: Space | None) -> str:
    if space is None:
        return "size unknown"
    return (f"store {space.used / 1e6:.1f} MB of a {space.budget / 1e6:.1f} MB budget "
            f"({space.fs_free / 1e6:.0f} MB free on the disk)")
