"""The monitors, run: committed readings in, changes of status out to the dispatcher.

A fan-out listener (gateway.ingest.fanout) behind a bounded queue and a thread
of its own, so evaluating never slows the commit path: when it falls behind,
whole batches are dropped and counted (`gateway.fanout_dropped{listener:
monitors}`); the readings themselves are safe in the store. Once a second
(`TICK`) every group is judged again, for what time alone changes: a window
that empties, a condition held long enough, a device gone silent, a reminder
due.

Statuses live in memory and in alerts.db (gateway.notify.journal): on start
they are read back, so an alert open before a restart stays open and is not
announced again, and a device that was silent stays NO DATA until it speaks.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from gateway.clock import Clock
from gateway.config.weekly import WeeklyWindow
from gateway.health.stats import Stats
from gateway.model import Reading
from gateway.monitors.bookings import Bookings
from gateway.monitors.config import MonitorCommon
from gateway.monitors.evaluate import (
    NO_DATA,
    OK,
    Evaluator,
    NoDataEvaluator,
    Verdict,
    evaluator,
)
from gateway.notify.dispatch import Change, Dispatcher
from gateway.notify.downtime import Downtime
from gateway.notify.journal import Journal

log = logging.getLogger("gateway.monitors")

#: seconds between judging every group again
TICK = 1.0


@dataclass
class GroupState:
    status: str
    since: float
    value: float | None = None
    tags: tuple[tuple[str, str], ...] = ()
    notified_at: float | None = None
    #: the downtime that silenced its last notice (its end may call for one)
    muted_by: str | None = None
    #: escalation steps already taken in this episode
    escalated: int = 0


class MonitorEngine:
    def __init__(self, monitors: Sequence[MonitorCommon], devices: Iterable[str],
                 dispatcher: Dispatcher, journal: Journal, clock: Clock, stats: Stats,
                 bookings: Bookings | None = None, batches: int = 1000) -> None:
        self.clock = clock
        self.bookings = bookings
        self.active = {m.name: tuple(WeeklyWindow.parse(w) for w in m.active)
                       for m in monitors if m.active}
        self.stats = stats
        self.dispatcher = dispatcher
        self.journal = journal
        now = clock.now()
        devices = list(devices)
        self.evaluators: list[Evaluator] = [evaluator(m, devices, now) for m in monitors]
        self.states: dict[tuple[str, str], GroupState] = {}
        names = {m.name for m in monitors}
        for (name, group), s in journal.states().items():
            if name in names:
                self.states[(name, group)] = GroupState(s.status, s.since, s.value, s.tags,
                                                        s.notified_at, s.muted_by, s.escalated)
        for ev in self.evaluators:
            if isinstance(ev, NoDataEvaluator):
                for (name, group), s in self.states.items():
                    if name == ev.monitor.name and s.status == NO_DATA:
                        ev.heard[group] = float("-inf")  # silent before the restart: still
        #: groups not OK, by monitor: judged every tick (a gate may close), and the ones
        #: reminders, escalation and downtime ends are about
        self.troubled: dict[str, set[str]] = {m.name: set() for m in monitors}
        for (name, group), st in self.states.items():
            if st.status != OK:
                self.troubled[name].add(group)
        #: evaluators by the metric they read; those reading every metric apart
        self.by_metric: dict[str, list[Evaluator]] = {}
        self.any_metric: list[Evaluator] = []
        for ev in self.evaluators:
            if ev.metric:
                self.by_metric.setdefault(ev.metric, []).append(ev)
            else:
                self.any_metric.append(ev)
        self._queue: queue.Queue[Sequence[Reading] | None] = queue.Queue(batches)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: an exception that broke the thread: the supervisor restarts the engine
        self.failure: BaseException | None = None

    # -- the fan-out listener (called in the ingest thread: must be quick) -------------

    def committed(self, readings: Sequence[Reading]) -> None:
        try:
            self._queue.put_nowait(readings)
        except queue.Full:
            self.stats.inc("gateway.fanout_dropped", len(readings), listener="monitors")

    def retained(self, readings: Sequence[Reading]) -> None:
        """A retained message is last known state of unknown age: never judged."""

    # -- the thread ---------------------------------------------------------------------

    def start(self) -> None:
        self.failure = None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="monitors", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            next_tick = self.clock.monotonic() + TICK
            while not self._stop.is_set():
                wait = max(0.0, next_tick - self.clock.monotonic())
                try:
                    item = self._queue.get(timeout=wait)
                except queue.Empty:
                    item = None
                if item:
                    self.take(item)
                if self.clock.monotonic() >= next_tick:
                    self.tick()
                    next_tick = self.clock.monotonic() + TICK
        except BaseException as exc:
            self.failure = exc
            log.critical("the monitors' thread died", exc_info=exc)

    # -- evaluation (in the thread; called directly by tests) ---------------------------

    def take(self, readings: Sequence[Reading]) -> None:
        now = self.clock.now()
        # Each evaluator sees only the readings of its metric: 200 monitors do not each
        # walk every reading.
        mine: dict[int, list[Reading]] = {}
        by_metric = self.by_metric
        for r in readings:
            for ev in by_metric.get(r.metric, ()):
                mine.setdefault(id(ev), []).append(r)
        for ev in self.evaluators:
            got = readings if not ev.metric else mine.get(id(ev))
            if got:
                for group in ev.add(got, now):
                    self._judge(ev, group, now)

    def tick(self) -> None:
        now = self.clock.now()
        for ev in self.evaluators:
            groups = set(ev.due(now))
            groups.update(self.troubled[ev.monitor.name])
            for group in groups:
                self._judge(ev, group, now)
        self._notices(now)
        self.stats.set("gateway.monitor_groups", len(self.states))
        self.stats.set("gateway.monitor_points", sum(ev.points() for ev in self.evaluators))

    def _judge(self, ev: Evaluator, group: str, now: float) -> None:
        key = (ev.monitor.name, group)
        state = self.states.get(key)
        verdict = ev.judge(group, state.status if state else OK, now)
        if verdict is None:
            return
        if verdict.status != OK and not self._gate_open(ev.monitor, now):
            verdict = Verdict(OK, verdict.value, verdict.tags)
        if state is None:
            state = self.states[key] = GroupState(OK, now, tags=verdict.tags)
        state.value = verdict.value
        if verdict.status == state.status:
            return
        before = state.status
        triggered = state.since if before != OK and verdict.status != OK else now
        change = Change(ev.monitor, group, before, verdict.status, verdict.value,
                        verdict.tags, now, triggered)
        muted_by = self.dispatcher.record(change)
        log.info("monitor %s on %s: %s -> %s (value %s)%s", ev.monitor.name, group, before,
                 verdict.status, verdict.value,
                 f"; silenced by downtime {muted_by}" if muted_by else "")
        self.stats.inc("gateway.monitor_transitions", monitor=ev.monitor.name,
                       status=verdict.status)
        if before == OK or verdict.status == OK:
            state.since = now
            state.escalated = 0
        state.status, state.tags = verdict.status, verdict.tags
        state.notified_at, state.muted_by = now, muted_by
        if state.status == OK:
            self.troubled[ev.monitor.name].discard(group)
        else:
            self.troubled[ev.monitor.name].add(group)

    def _gate_open(self, m: MonitorCommon, now: float) -> bool:
        """Whether the monitor judges now: inside its `active` windows, and booked or
        unbooked as its `booking` asks. Outside, its groups are OK."""
        windows = self.active.get(m.name)
        if windows and not any(w.contains(self.clock.local(now)) for w in windows):
            return False
        if m.booking is not None and self.bookings is not None:
            booked = self.bookings.booked(now, m.booking)
            if booked != (m.booking.only == "booked"):
                return False
        return True

    def _notices(self, now: float) -> None:
        """What time alone calls for while a group is in trouble: the end of a downtime that
        silenced it, an escalation step, a reminder."""
        monitors = {ev.monitor.name: ev.monitor for ev in self.evaluators}
        downtimes = {d.config.name: d for d in self.dispatcher.downtimes.all}
        for name, groups in self.troubled.items():
            for group in groups:
                self._notice(monitors[name], group, self.states[(name, group)], downtimes,
                             now)

    def _notice(self, m: MonitorCommon, group: str, state: GroupState,
                downtimes: dict[str, Downtime], now: float) -> None:
        base = Change(m, group, state.status, state.status, state.value, state.tags, now,
                      state.since)
        if state.muted_by is not None:
            quiet = downtimes.get(state.muted_by)
            if quiet is not None and quiet.active(now):
                return
            state.muted_by = None
            if quiet is not None and quiet.config.notify_end:
                state.muted_by = self.dispatcher.record(replace(base, notice="downtime-end"))
                state.notified_at = now
            return
        if not (m.escalate or m.renotify_interval) or self.journal.acked(m.name, group):
            return
        steps = m.escalate
        if state.escalated < len(steps) and now - state.since >= steps[state.escalated].after:
            step = state.escalated + 1
            state.muted_by = self.dispatcher.record(replace(
                base, notice="escalation", notify=steps[step - 1].notify, step=step))
            state.escalated = step
            return
        last = state.notified_at if state.notified_at is not None else state.since
        if m.renotify_interval and now - last >= m.renotify_interval:
            state.muted_by = self.dispatcher.record(replace(base, notice="renotify"))
            state.notified_at = now

    def open(self) -> list[tuple[str, str, GroupState]]:
        """Groups not OK now: (monitor, group, state)."""
        return [(m, g, s) for (m, g), s in sorted(self.states.items()) if s.status != OK]
