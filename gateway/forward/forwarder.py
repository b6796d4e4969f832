"""Forwarders: one task per sink walks that sink's cursor through the store.

Each forwarder has its own store connection and its own backoff, so one dead
sink never blocks another. A row leaves the store (purged by ingest) only when
every sink's cursor has passed it.

The rows a forwarder is sending are claimed (`InFlight`), so compaction and
eviction leave them alone. A sink's `max_age` drops (counted) readings too old
to be worth sending to it. If the store cannot record an outcome (disk full),
the cursor stays where it was and the batch is sent again later: at least once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.clock import SYSTEM, Clock
from gateway.health.stats import Stats
from gateway.model import Row
from gateway.sinks.base import Outcome, Sink
from gateway.store import redelivery
from gateway.store.errors import classify
from gateway.store.inflight import InFlight
from gateway.store.outbox import Outbox

log = logging.getLogger("gateway.forward")

HELD_RETRY = 3600.0  # a held sink (a wrong URL, a refused key) tries once an hour, loudly
#: the cursor is written to the store at most this often (and on stop): each write is a
#: page and an fsync for the SD card. A crash may send what followed it again (at least
#: once); the rows between the written cursor and the one in memory stay claimed, so
#: housekeeping neither folds nor evicts readings this sink already has.
CURSOR_SAVE_EVERY = 5.0


@dataclass
class Backoff:
    """Exponential backoff with jitter, so many gateways don't retry in step."""

    minimum: float
    maximum: float
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next(self, at_least: float | None = None) -> float:
        base = min(self.maximum, self.minimum * (2 ** self.failures))
        self.failures += 1
        delay = base * self.rng.uniform(0.5, 1.0)
        if at_least is not None:
            delay = max(delay, at_least + self.rng.uniform(0, 0.2))
        return delay

    def reset(self) -> None:
        self.failures = 0


class Forwarder:
    """Moves one sink's cursor forward, batch by batch, until stopped."""

    def __init__(self, sink: Sink, outbox_factory: Callable[[], Outbox], stats: Stats,
                 batch_size: int, timeout: float, backoff: Backoff,
                 poll_interval: float = 5.0, inflight: InFlight | None = None,
                 max_age: float = 0.0, clock: Clock = SYSTEM,
                 gate: Callable[[], str] | None = None) -> None:
        self.sink = sink
        #: asked before each batch: "" to send, else why the sink waits (forward_when)
        self.gate = gate
        self.inflight = inflight or InFlight()
        self.max_age = max_age
        self.clock = clock
        self._outbox_factory = outbox_factory
        self.stats = stats
        self.batch_size = batch_size
        self.timeout = timeout
        self.backoff = backoff
        self.poll_interval = poll_interval
        self.wakeup = asyncio.Event()  # stop: ends any wait
        self.new_data = asyncio.Event()  # a commit: ends an idle wait, never a backoff
        self.state = "starting"
        self.last_error = ""
        #: called when the store turns out damaged (the service recovers it)
        self.on_corrupt: Callable[[], None] | None = None
        self._stopping = False
        #: the cursor: rows up to `position` are done; `saved` is what the store holds
        self.position: int | None = None
        self.saved: int | None = None
        self._save_due = 0.0

    def _set_state(self, state: str, error: str = "") -> None:
        self.state = state
        self.last_error = error
        states = ("ok", "retrying", "held", "idle", "starting", "waiting")
        for s in states:
            self.stats.set("gateway.sink_state", 1.0 if s == state else 0.0,
                           sink=self.sink.name, state=s)

    def stop(self) -> None:
        self._stopping = True
        self.wakeup.set()
        self.new_data.set()

    async def run(self) -> None:
        outbox = await self._open()
        if outbox is None:
            return
        name = self.sink.name
        await self.sink.open()
        self._set_state("idle")
        try:
            while not self._stopping:
                why = self.gate() if self.gate is not None else ""
                if why:
                    # Store and forward: everything stays in the store until the
                    # condition holds; a commit (new latest values) asks again.
                    if self.state != "waiting" or self.last_error != why:
                        log.info("sink %s: %s", name, why)
                        self._set_state("waiting", why)
                    await self._idle()
                    continue
                if self.state == "waiting":
                    log.info("sink %s: forwarding again", name)
                    self._set_state("idle")
                try:
                    if self.position is None:
                        self.position = self.saved = await asyncio.to_thread(outbox.cursor, name)
                    rows, again = await asyncio.to_thread(self._next, outbox)
                except sqlite3.Error as exc:
                    self._unclaim()
                    fault = classify(exc)
                    log.error("sink %s: cannot read the store: %s", name, fault.explain(exc))
                    if fault.corrupt and self.on_corrupt is not None:
                        self.on_corrupt()
                    await self._sleep(5.0)
                    continue
                if not rows:
                    if self.state not in ("retrying", "held"):
                        self._set_state("idle")
                    await self._idle()
                    if self.position != self.saved and self.clock.monotonic() >= self._save_due:
                        await asyncio.to_thread(self._save, outbox)
                    continue
                try:
                    if again:
                        # Asked for by name (`gateway store redeliver`): sent whatever
                        # their age, this sink's max_age notwithstanding.
                        outcome = await self._send(rows)
                        recorded = await asyncio.to_thread(self._record_again, outbox, rows,
                                                           outcome)
                    else:
                        outcome = await self._deliver(rows)
                        recorded = await asyncio.to_thread(self._record, outbox, rows,
                                                           outcome)
                finally:
                    self._unclaim()
                if not recorded:
                    await self._sleep(5.0)
                elif outcome.hold:
                    self._set_state("held", outcome.error)
                    log.error("sink %s HELD: %s. The destination refuses the requests "
                              "themselves, so no reading is given up for it: they are kept "
                              "in the store (the backlog grows). Fix the sink's settings and "
                              "restart the gateway; it tries again in %.0f s.", name,
                              outcome.error, HELD_RETRY)
                    await self._sleep(HELD_RETRY)
                elif outcome.error:
                    delay = self.backoff.next(outcome.retry_after)
                    self._set_state("retrying", outcome.error)
                    self.stats.inc("gateway.sink_failures", sink=name)
                    log.warning("sink %s: %s; retrying in %.1f s (nothing is lost: the "
                                "backlog waits in the store)", name, outcome.error, delay)
                    await self._sleep(delay)
                else:
                    if self.state in ("retrying", "held"):
                        log.info("sink %s: delivering again", name)
                    self.backoff.reset()
                    self._set_state("ok")
        finally:
            await self.sink.close()
            if self.position != self.saved:
                await asyncio.to_thread(self._save, outbox)
            await asyncio.to_thread(outbox.close)

    async def _open(self) -> Outbox | None:
        """This forwarder's store connection; waits while the store cannot be opened."""
        while not self._stopping:
            try:
                return await asyncio.to_thread(self._outbox_factory)
            except sqlite3.Error as exc:
                log.error("sink %s: cannot open the store: %s", self.sink.name,
                          classify(exc).explain(exc))
                await self._sleep(5.0)
        return None

    def _next(self, outbox: Outbox) -> tuple[list[Row], bool]:
        """The next batch: dead letters put back in the queue first, then what follows
        the cursor. The flag says which."""
        if redelivery.waiting(outbox, self.sink.name):
            rows = redelivery.fetch(outbox, self.sink.name, self.batch_size)
            if rows:
                return rows, True
        return self._fetch(outbox), False

    def _record_again(self, outbox: Outbox, rows: list[Row], outcome: Outcome) -> bool:
        """Record a redelivery (see gateway.store.redelivery). False if the store refused."""
        name = self.sink.name
        refused: dict[str, list[Row]] = {}
        for row, reason in outcome.dead:
            refused.setdefault(reason, []).append(row)
        dead_ids = {row.id for row, _ in outcome.dead}
        delivered = [r for r in rows[:outcome.done] if r.id not in dead_ids]
        try:
            back = redelivery.finish(outbox, name, delivered, refused)
        except sqlite3.Error as exc:
            log.error("sink %s: cannot record the redelivery: %s; it will be sent again",
                      name, classify(exc).explain(exc))
            return False
        if back:
            self.stats.inc("gateway.redelivered", back, sink=name)
            self.stats.inc("gateway.delivered", back, sink=name)
            log.info("sink %s: %d dead-lettered reading(s) delivered on a second try", name,
                     back)
        for reason, again in refused.items():
            log.error("sink %s: %d redelivered reading(s) refused again (%s)%s; still in the "
                      "dead_letters table", name, len(again), reason,
                      f": {outcome.refusal}" if outcome.refusal else "")
        return True

    def _fetch(self, outbox: Outbox) -> list[Row]:
        """The next batch, claimed before it is read (see InFlight) from the saved cursor
        on: what lies between it and the position in memory was sent already."""
        name = self.sink.name
        assert self.position is not None and self.saved is not None
        with self.inflight.reading(name, self.saved):
            rows = outbox.rows_after(self.position, self.batch_size)
        self.inflight.narrow(name, self.saved, rows[-1].id if rows else self.position)
        return rows

    def _unclaim(self) -> None:
        """Keep claimed only what was sent but is not in the saved cursor yet."""
        if self.saved is not None and self.position is not None:
            self.inflight.narrow(self.sink.name, self.saved, self.position)
        else:
            self.inflight.release(self.sink.name)

    def _save(self, outbox: Outbox) -> None:
        """Write the cursor to the store (see CURSOR_SAVE_EVERY)."""
        if self.position is None or self.position == self.saved:
            return
        try:
            outbox.confirm(self.sink.name, self.position)
        except sqlite3.Error as exc:
            log.warning("sink %s: cannot save its cursor: %s; what was sent since the last "
                        "save may be sent again after a restart", self.sink.name,
                        classify(exc).explain(exc))
            return
        self.saved = self.position
        self._save_due = self.clock.monotonic() + CURSOR_SAVE_EVERY
        self._unclaim()

    async def _deliver(self, rows: list[Row]) -> Outcome:
        """Send the batch, less readings older than this sink's max_age (dropped, counted)."""
        if not self.max_age:
            return await self._send(rows)
        oldest = self.clock.now() - self.max_age
        fresh = [r for r in rows if r.ts >= oldest]
        if len(fresh) == len(rows):
            return await self._send(rows)
        outcome = await self._send(fresh) if fresh else Outcome()
        # Map `done` (a count of leading rows of `fresh`) back onto the whole batch:
        # stale rows up to the last finished fresh one are done too, and dropped.
        upto = fresh[outcome.done - 1].id if outcome.done else None
        if outcome.done == len(fresh):
            done = len(rows)
        elif upto is None:
            done = 0
            while done < len(rows) and rows[done].ts < oldest:
                done += 1
        else:
            done = next(i for i, r in enumerate(rows) if r.id == upto) + 1
        stale = sum(r.samples for r in rows[:done] if r.ts < oldest)
        if stale:
            outcome.dropped["max_age"] = outcome.dropped.get("max_age", 0) + stale
        outcome.done = done
        return outcome

    async def _send(self, rows: list) -> Outcome:
        started = self.clock.monotonic()
        try:
            outcome = await asyncio.wait_for(self.sink.send(rows), self.timeout)
        except TimeoutError:
            outcome = Outcome.failed(f"no answer within {self.timeout:g} s")
        except Exception as exc:  # a sink bug must not kill forwarding for good
            log.exception("sink %s: unexpected error", self.sink.name)
            outcome = Outcome.failed(f"unexpected error: {type(exc).__name__}: {exc}")
        self.stats.set("gateway.sink_last_send_seconds", self.clock.monotonic() - started,
                       sink=self.sink.name)
        return outcome

    def _record(self, outbox: Outbox, rows: list[Row], outcome: Outcome) -> bool:
        """Store the outcome (dead letters, losses, cursor). False if the store refused:
        the cursor stays, so the batch is sent again (at least once, never lost)."""
        try:
            self._store_outcome(outbox, rows, outcome)
        except sqlite3.Error as exc:
            log.error("sink %s: cannot record what was delivered: %s; the batch will be "
                      "sent again", self.sink.name, classify(exc).explain(exc))
            return False
        name = self.sink.name
        if outcome.delivered:
            self.stats.inc("gateway.delivered", outcome.delivered, sink=name)
        if outcome.merged:
            self.stats.inc("gateway.sink_merged", outcome.merged, sink=name)
        return True

    def _store_outcome(self, outbox: Outbox, rows: list[Row], outcome: Outcome) -> None:
        name = self.sink.name
        by_reason: dict[str, list[Row]] = {}
        for row, reason in outcome.dead:
            by_reason.setdefault(reason, []).append(row)
        upto = rows[outcome.done - 1].id if outcome.done else None
        if by_reason or any(outcome.dropped.values()):
            # Losses are written at once, with the cursor, in one transaction.
            outbox.record(name, by_reason, outcome.dropped, upto)
            if upto is not None:
                self.position = self.saved = upto
                self._save_due = self.clock.monotonic() + CURSOR_SAVE_EVERY
        elif upto is not None:
            self.position = upto
            if self.clock.monotonic() >= self._save_due:
                self._save(outbox)
        for reason, dead_rows in by_reason.items():
            n = sum(r.samples for r in dead_rows)
            self.stats.inc("gateway.dropped", n, sink=name, reason=reason)
            log.error("sink %s: %d reading(s) refused one by one (%s)%s; kept in the "
                      "dead_letters table (`gateway store redeliver` sends them again)", name,
                      n, reason, f": {outcome.refusal}" if outcome.refusal else "")
        for reason, n in outcome.dropped.items():
            self.stats.inc("gateway.dropped", n, sink=name, reason=reason)
            log.warning("sink %s: dropped %d reading(s): %s", name, n, reason)

    def notify(self) -> None:
        """New readings were committed (called in the event loop)."""
        self.new_data.set()

    async def _idle(self) -> None:
        """Wait for a commit (or the poll interval, in case a notice was missed), or until
        an unsaved cursor is due to be saved."""
        self.new_data.clear()
        timeout = self.poll_interval
        if self.position != self.saved:
            timeout = max(0.0, min(timeout, self._save_due - self.clock.monotonic()))
        waits = [asyncio.ensure_future(self.new_data.wait()),
                 asyncio.ensure_future(self.wakeup.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _sleep(self, seconds: float) -> None:
        if self._stopping:
            return
        self.wakeup.clear()
        try:
            await asyncio.wait_for(self.wakeup.wait(), seconds)
        except TimeoutError:
            pass
