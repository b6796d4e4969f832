"""The monitors, run: committed readings in, changes of status out to the dispatcher.

A fan-out listener (gateway.ingest.fanout) behind a bounded queue and a thread
of its own, so evaluating never slows the commit path: when it falls behind,
whole batches are dropped and counted (`gateway.fanout_dropped{listener:
monitors}`); the readings themselves are safe in the store. The monitors share
stores by metric (gateway.monitors.series), so a reading costs one update per
store, not one per monitor. Groups with new readings are judged at most every
`PASS` seconds; twice a second (`TICK`) the groups that time alone may change
are judged too (a window that empties, a condition held long enough, a device
gone silent), and reminders, escalation and downtime ends are seen to.

Statuses live in memory and in alerts.db (gateway.notify.journal): on start
they are read back, so an alert open before a restart stays open and is not
announced again, and a device that was silent stays NO DATA until it speaks.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from gateway.clock import Clock
from gateway.config.weekly import WeeklyWindow
from gateway.health.stats import Stats
from gateway.model import Reading
from gateway.monitors.bookings import Bookings
from gateway.monitors.config import (
    AnomalyMonitor,
    MonitorCommon,
    NoDataMonitor,
    StateMonitor,
    ThresholdMonitor,
)
from gateway.monitors.evaluate import (
    NO_DATA,
    OK,
    AnomalyEvaluator,
    Evaluator,
    NoDataEvaluator,
    StateEvaluator,
    ThresholdEvaluator,
)
from gateway.monitors.series import HeardStore, LatestStore, WindowStore
from gateway.notify.dispatch import Change, Dispatcher
from gateway.notify.downtime import Downtime
from gateway.notify.journal import Journal
from gateway.worker import Worker

log = logging.getLogger("gateway.monitors")

#: seconds between judging every group again
TICK = 0.5
#: groups with new readings are judged at most this often (and at least: within PASS of
#: their commit)
PASS = 0.5


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


class MonitorEngine(Worker):
    thread_name = "monitors"
    what = "the monitors' thread"

    def __init__(self, monitors: Sequence[MonitorCommon], devices: Iterable[str],
                 dispatcher: Dispatcher, journal: Journal, clock: Clock, stats: Stats,
                 bookings: Bookings | None = None, batches: int = 1000,
                 base_tags: Mapping[str, Iterable[str]] | None = None) -> None:
        super().__init__()
        self.clock = clock
        self.bookings = bookings
        self.active = {m.name: tuple(WeeklyWindow.parse(w) for w in m.active)
                       for m in monitors if m.active}
        self.stats = stats
        self.dispatcher = dispatcher
        self.journal = journal
        now = clock.now()
        devices = list(devices)
        base = {d: frozenset(tags) for d, tags in (base_tags or {}).items()}
        self.heard = HeardStore(devices, now, by_metric=any(
            isinstance(m, NoDataMonitor) and m.metric for m in monitors))
        self.stores: dict[str, list[WindowStore | LatestStore]] = {}  # by metric
        self.readers: dict[int, list[Evaluator]] = {}  # id(store) -> its evaluators
        self.evaluators = self._build(monitors, devices, base)
        self.states: dict[tuple[str, str], GroupState] = {}
        names = {m.name for m in monitors}
        for (name, group), s in journal.states().items():
            if name in names:
                self.states[(name, group)] = GroupState(s.status, s.since, s.value, s.tags,
                                                        s.notified_at, s.muted_by, s.escalated)
        #: groups not OK, by monitor: judged every tick (a gate may close), and the ones
        #: reminders, escalation and downtime ends are about
        self.troubled: dict[str, set[str]] = {m.name: set() for m in monitors}
        for (name, group), st in self.states.items():
            if st.status != OK:
                self.troubled[name].add(group)
        for ev in self.evaluators:
            if isinstance(ev, NoDataEvaluator):  # silent before the restart: still
                ev.silent_before = {g for g in self.troubled[ev.monitor.name]
                                    if self.states[(ev.monitor.name, g)].status == NO_DATA}
        self._dirty: dict[int, set[str]] = {}
        self._dirty_devices: set[str] = set()
        self._queue: queue.Queue[Sequence[Reading] | None] = queue.Queue(batches)

    def _build(self, monitors: Sequence[MonitorCommon], devices: list[str],
               base: Mapping[str, frozenset[str]]) -> list[Evaluator]:
        """Evaluators over shared stores: one store per metric and scope (and grouping),
        whatever the number of monitors reading it."""
        windows: dict[tuple[str, tuple[str, ...], frozenset[str] | None],
                      list[ThresholdMonitor | AnomalyMonitor]] = {}
        latest: dict[tuple[str, frozenset[str] | None], list[StateMonitor]] = {}
        for m in monitors:
            scope = frozenset(m.devices) if m.devices else None
            if isinstance(m, ThresholdMonitor | AnomalyMonitor):
                windows.setdefault((m.metric, m.by, scope), []).append(m)
            elif isinstance(m, StateMonitor):
                latest.setdefault((m.metric, scope), []).append(m)
        built: dict[str, Evaluator] = {}
        for (metric, by, scope), ms in windows.items():
            shortest = min(m.alert_window if isinstance(m, AnomalyMonitor) else m.window
                           for m in ms)
            store = WindowStore(metric, by, scope, shortest, max(m.window for m in ms))
            self._add_store(metric, store, [
                AnomalyEvaluator(m, store) if isinstance(m, AnomalyMonitor)
                else ThresholdEvaluator(m, store) for m in ms], built)
        for (metric, scope), sms in latest.items():
            lstore = LatestStore(metric, scope, base)
            self._add_store(metric, lstore, [StateEvaluator(m, lstore) for m in sms], built)
        for m in monitors:
            if isinstance(m, NoDataMonitor):
                built[m.name] = NoDataEvaluator(m, self.heard, devices)
        return [built[m.name] for m in monitors]

    def _add_store(self, metric: str, store: WindowStore | LatestStore,
                   evaluators: list[Evaluator], built: dict[str, Evaluator]) -> None:
        self.stores.setdefault(metric, []).append(store)
        self.readers[id(store)] = evaluators
        built.update((ev.monitor.name, ev) for ev in evaluators)

    # -- the fan-out listener (called in the ingest thread: must be quick) -------------

    def committed(self, readings: Sequence[Reading]) -> None:
        try:
            self._queue.put_nowait(readings)
        except queue.Full:
            self.stats.inc("gateway.fanout_dropped", len(readings), listener="monitors")

    def retained(self, readings: Sequence[Reading]) -> None:
        """A retained message is last known state of unknown age: never judged."""

    # -- the thread ---------------------------------------------------------------------

    def wake(self) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass  # a full queue wakes it anyway

    def work(self) -> None:
        next_tick = self.clock.monotonic() + TICK
        next_pass = 0.0
        while not self._stop.is_set():
            dirty = bool(self._dirty or self._dirty_devices)
            wait = max(0.0, min(next_tick, next_pass if dirty else next_tick)
                       - self.clock.monotonic())
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item:
                self.add(item)
            mono = self.clock.monotonic()
            if mono >= next_tick:
                self.judge(tick=True)
                next_tick, next_pass = mono + TICK, mono + PASS
            elif (self._dirty or self._dirty_devices) and mono >= next_pass:
                # At most one pass every PASS seconds: a reading is judged within PASS
                # of its commit, and a burst of batches costs a few passes, not one each.
                self.judge()
                next_pass = mono + PASS

    # -- evaluation (in the thread; called directly by tests) ---------------------------

    def add(self, readings: Sequence[Reading]) -> None:
        """Put committed readings in the stores; their groups are judged at the next pass."""
        now = self.clock.now()
        self._dirty_devices |= self.heard.add(readings, now)
        stores = self.stores
        by_metric: dict[str, list[Reading]] = {}
        for r in readings:
            if r.metric in stores:
                by_metric.setdefault(r.metric, []).append(r)
        for metric, mine in by_metric.items():
            for store in stores[metric]:
                store.add_many(mine, self._dirty.setdefault(id(store), set()))

    def take(self, readings: Sequence[Reading]) -> None:
        """Add readings and judge what they change at once."""
        self.add(readings)
        self.judge()

    def tick(self) -> None:
        self.judge(tick=True)

    def judge(self, tick: bool = False) -> None:
        """One pass: the groups with new readings; with `tick`, also those time alone may
        change and those in trouble, then reminders, escalation and downtime ends."""
        now = self.clock.now()
        dirty, self._dirty = self._dirty, {}
        devices, self._dirty_devices = self._dirty_devices, set()
        for store_id, groups in dirty.items():
            for ev in self.readers[store_id]:
                for group in groups:
                    self._judge(ev, group, now)
        for ev in self.evaluators:
            if isinstance(ev, NoDataEvaluator) and devices:
                # A device heard can only end a silence (a last will is judged as one)
                for group in self.troubled[ev.monitor.name] | {
                        f"device:{d}" for d in devices
                        if d in self.heard.offline and d in ev.device_set}:
                    self._judge(ev, group, now)
            if tick:
                groups = set(ev.due(now))
                groups.update(self.troubled[ev.monitor.name])
                for group in groups:
                    self._judge(ev, group, now)
        for stores in self.stores.values():
            for store in stores:
                store.new_pass()
        if tick:
            self._notices(now)
            self.stats.set("gateway.monitor_groups", len(self.states))
            self.stats.set("gateway.monitor_points", self.points())

    def points(self) -> int:
        """What the stores hold: window buckets, latest values, heard times."""
        return self.heard.points() + sum(s.points() for ss in self.stores.values()
                                         for s in ss)

    def _judge(self, ev: Evaluator, group: str, now: float) -> None:
        key = (ev.monitor.name, group)
        state = self.states.get(key)
        verdict = ev.judge(group, state.status if state else OK, now)
        if verdict is None:
            return
        status, value, tags = verdict
        if status != OK and not self._gate_open(ev.monitor, now):
            status = OK
        if state is None:
            if status == OK:
                return  # calm and never anything else: nothing to keep
            state = self.states[key] = GroupState(OK, now, tags=tags)
        state.value = value
        if status == state.status:
            return
        before = state.status
        triggered = state.since if before != OK and status != OK else \
            ev.began(group, now) if status != OK else now
        change = Change(ev.monitor, group, before, status, value, tags, now, triggered,
                        band=ev.bands.get(group) if isinstance(ev, AnomalyEvaluator) else None)
        muted_by = self.dispatcher.record(change)
        log.info("monitor %s on %s: %s -> %s (value %s)%s", ev.monitor.name, group, before,
                 status, value, f"; silenced by downtime {muted_by}" if muted_by else "")
        self.stats.inc("gateway.monitor_transitions", monitor=ev.monitor.name, status=status)
        if before == OK or status == OK:
            state.since = now  # reminders and escalation count from the alert itself
            state.escalated = 0
        state.status, state.tags = status, tags
        state.notified_at, state.muted_by = now, muted_by
        if status == OK:
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
