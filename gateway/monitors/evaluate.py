"""What each kind of monitor concludes from the stores (gateway.monitors.series): a
status per group.

A group is what one monitor alerts on alone: a device (`by: [device]`, the
default), or the value of other tags (`by: [room]`). Statuses are Datadog's:
OK, WARN, ALERT and NO DATA. An evaluator reads a store shared with the
monitors that read alike, and keeps only its own conclusions (a condition's
start, say); `judge` is called for groups with new readings and, twice a
second, for those time alone may change (`due`).
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.monitors.config import (
    AnomalyMonitor,
    MonitorCommon,
    NoDataMonitor,
    StateMonitor,
    ThresholdMonitor,
)
from gateway.monitors.series import HeardStore, LatestStore, WindowStore

OK, WARN, ALERT, NO_DATA = "OK", "WARN", "ALERT", "NO DATA"


#: a group's status, its value (None for NO DATA) and its tags (device, room ...): a plain
#: tuple, as it is made for every group judged
Verdict = tuple[str, float | None, tuple[tuple[str, str], ...]]


class Evaluator:
    """One monitor's judgement."""

    monitor: MonitorCommon

    def judge(self, group: str, current: str, now: float) -> Verdict | None:
        """The group's status now (None: nothing to go on, leave it as it is)."""
        raise NotImplementedError

    def groups(self) -> Iterable[str]:
        raise NotImplementedError

    def due(self, now: float) -> Iterable[str]:
        """Groups whose verdict time alone may have changed (judged again each tick)."""
        return self.groups()

    def began(self, group: str, now: float) -> float:
        """When the trouble just found began (a condition's start, a silence's), for
        `{{duration}}` and `{{last_triggered_at}}`."""
        return now


class ThresholdEvaluator(Evaluator):
    def __init__(self, monitor: ThresholdMonitor, store: WindowStore) -> None:
        self.monitor: ThresholdMonitor = monitor
        self.store = store

    def groups(self) -> Iterable[str]:
        return list(self.store.groups)

    def due(self, now: float) -> Iterable[str]:
        # a bucket is about to leave this monitor's window
        edge = now - self.monitor.window - self.store.width
        return [g for g, b in self.store.groups.items() if b and b[0][0] < edge]

    def judge(self, group: str, current: str, now: float) -> Verdict | None:
        m = self.monitor
        if m.require_full_window:
            first = self.store.first(group)
            if first is None or first > now - m.window + self.store.width:
                return None  # the window is not full yet: too early to judge
        value = self.store.aggregate(group, m.aggregation, m.window, now)
        if value is None:
            return None
        return (_level(m, value, current), value, self.store.tags[group])


def _level(m: ThresholdMonitor, value: float, current: str) -> str:
    """ALERT, WARN or OK, with hysteresis: leaving a level needs its recovery value."""
    up = m.comparison == "above"

    def past(limit: float) -> bool:
        return value > limit if up else value < limit

    if m.critical is not None and past(m.critical):
        return ALERT
    if current == ALERT and m.critical is not None and m.critical_recovery is not None \
            and past(m.critical_recovery):
        return ALERT
    if m.warning is not None and past(m.warning):
        return WARN
    if current in (ALERT, WARN) and m.warning is not None and m.warning_recovery is not None \
            and past(m.warning_recovery):
        return WARN
    return OK


#: fewest history points a band is learnt from
MIN_HISTORY = 5


class AnomalyEvaluator(Evaluator):
    """ALERT while the recent average is outside the band learnt from the history."""

    def __init__(self, monitor: AnomalyMonitor, store: WindowStore) -> None:
        self.monitor: AnomalyMonitor = monitor
        self.store = store
        #: per group: the band (lower, upper) last judged against, for messages
        self.bands: dict[str, tuple[float, float]] = {}

    def groups(self) -> Iterable[str]:
        return list(self.store.groups)

    def due(self, now: float) -> Iterable[str]:
        return list(self.store.groups)  # the band moves with time

    def judge(self, group: str, current: str, now: float) -> Verdict | None:
        m, width = self.monitor, self.store.width
        buckets = self.store.groups.get(group)
        if not buckets:
            return None
        recent_start, history_start = now - m.alert_window, now - m.window
        recent = [b for b in buckets if b[0] + width > recent_start]
        history = [b[2] / b[1] for b in buckets
                   if history_start < b[0] + width <= recent_start and b[1]]
        # The band is learnt once the history spans at least half its window (and has a
        # few points): a band from ten minutes of a fridge's hour-long cycle is too narrow.
        if not recent or len(history) < MIN_HISTORY or \
                buckets[0][0] > history_start + (m.window - m.alert_window) / 2:
            return None
        value = sum(b[2] for b in recent) / sum(b[1] for b in recent)
        mean = sum(history) / len(history)
        spread = (sum((x - mean) ** 2 for x in history) / len(history)) ** 0.5
        # A perfectly flat history would make any change an anomaly: at least 1 % of it.
        spread = max(spread, abs(mean) * 0.01, 1e-9)
        low, high = mean - m.bounds * spread, mean + m.bounds * spread
        self.bands[group] = (low, high)
        outside = (value > high and m.direction != "below") or \
            (value < low and m.direction != "above")
        return (ALERT if outside else OK, value, self.store.tags[group])


class StateEvaluator(Evaluator):
    """ALERT (or WARN) once the condition has held for `duration` by the readings' time."""

    def __init__(self, monitor: StateMonitor, store: LatestStore) -> None:
        self.monitor: StateMonitor = monitor
        self.store = store
        #: per group: since when the condition has held (None: it does not)
        self.since: dict[str, float | None] = {}

    def groups(self) -> Iterable[str]:
        return list(self.store.series)

    def due(self, now: float) -> Iterable[str]:
        return [g for g, since in self.since.items() if since is not None]

    def began(self, group: str, now: float) -> float:
        since = self.since.get(group)
        return now if since is None else min(since, now)

    def _held_throughout(self, low: float, high: float) -> bool:
        m = self.monitor
        if m.equals is not None:
            return low == high == m.equals
        return (m.above is None or low > m.above) and (m.below is None or high < m.below)

    def judge(self, group: str, current: str, now: float) -> Verdict | None:
        s = self.store.series.get(group)
        if s is None:
            return None
        last_ts, value, low, high, first_ts = s
        since = self.since.get(group)
        if group in self.store.fresh:  # readings since the last look
            if self._held_throughout(low, high):
                since = first_ts if since is None else since
            elif self.monitor.holds(value):
                since = last_ts  # broken in between, holding again since the last one
            else:
                since = None
            self.since[group] = since
        m = self.monitor
        if since is None:
            status = OK
        elif now - since >= m.duration:
            status = ALERT if m.level == "critical" else WARN
        else:
            # Held, not yet long enough: an open alert stays open, a calm group stays calm.
            status = current if current in (ALERT, WARN) else OK
        return (status, value, self.store.tags[group])


class NoDataEvaluator(Evaluator):
    """NO DATA after `timeframe` without a reading (by the gateway's clock, when it was
    committed), or at once when the device's last will says it went offline."""

    def __init__(self, monitor: NoDataMonitor, store: HeardStore,
                 all_devices: Iterable[str]) -> None:
        self.monitor: NoDataMonitor = monitor
        self.store = store
        self.devices = list(monitor.devices or all_devices)
        self.device_set = frozenset(self.devices)
        #: groups that were NO DATA before a restart: they stay so until heard again
        self.silent_before: set[str] = set()

    def groups(self) -> Iterable[str]:
        return [f"device:{d}" for d in self.devices]

    def due(self, now: float) -> Iterable[str]:
        quiet = now - self.monitor.timeframe
        metric, heard, offline = self.monitor.metric, self.store.heard, self.store.offline
        return [f"device:{d}" for d in self.devices
                if heard(d, metric) < quiet or d in offline] + list(self.silent_before)

    def began(self, group: str, now: float) -> float:
        heard = self.store.heard(group.removeprefix("device:"), self.monitor.metric)
        return now if group in self.silent_before else min(heard, now)

    def judge(self, group: str, current: str, now: float) -> Verdict | None:
        device = group.removeprefix("device:")
        heard = self.store.heard(device, self.monitor.metric)
        tags = (("device", device),)
        if group in self.silent_before:
            if heard <= self.store.started:
                return (NO_DATA, None, tags)
            self.silent_before.discard(group)
        if device in self.store.offline or now - heard > self.monitor.timeframe:
            return (NO_DATA, None, tags)
        return (OK, None, tags)
