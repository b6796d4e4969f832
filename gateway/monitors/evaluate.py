"""What each kind of monitor concludes from the readings it has seen: a status per group.

A group is what one monitor alerts on alone: a device (`by: [device]`, the
default), or the value of other tags (`by: [room]`). Statuses are Datadog's:
OK, WARN, ALERT and NO DATA. Each evaluator keeps only what it needs in memory,
bounded (see `MAX_POINTS`); `transitions` in gateway.monitors.engine turns a
change of status into a notification.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.model import Reading
from gateway.monitors.config import MonitorCommon, NoDataMonitor, StateMonitor, ThresholdMonitor

OK, WARN, ALERT, NO_DATA = "OK", "WARN", "ALERT", "NO DATA"
#: most points one threshold group keeps for its window: past this the oldest go (an
#: average over more than this is as good as one over the newest this many)
MAX_POINTS = 3600


@dataclass(frozen=True)
class Verdict:
    status: str
    value: float | None = None
    #: the group's tags (device, room ...), for messages
    tags: tuple[tuple[str, str], ...] = ()


class Evaluator:
    """One monitor's view of the readings."""

    def __init__(self, monitor: MonitorCommon, all_devices: Iterable[str]) -> None:
        self.monitor = monitor
        self.devices = frozenset(monitor.devices or all_devices)

    def wants(self, r: Reading) -> bool:
        return r.tags.get("device") in self.devices

    def add(self, readings: Iterable[Reading], now: float) -> set[str]:
        """Take committed readings; the groups whose verdict may have changed."""
        raise NotImplementedError

    def judge(self, group: str, current: str, now: float) -> Verdict | None:
        """The group's status now (None: nothing to go on, leave it as it is)."""
        raise NotImplementedError

    def groups(self) -> Iterable[str]:
        raise NotImplementedError

    def due(self, now: float) -> Iterable[str]:
        """Groups whose verdict time alone may have changed (judged again each tick)."""
        return self.groups()

    @property
    def metric(self) -> str:
        """The metric it reads ("": every reading of its devices)."""
        return str(getattr(self.monitor, "metric", ""))

    def points(self) -> int:
        """What it holds in memory, in (time, value) points."""
        return 0


def _group(r: Reading, by: tuple[str, ...]) -> tuple[str, tuple[tuple[str, str], ...]]:
    tags = tuple((k, r.tags.get(k, "")) for k in by)
    return ",".join(f"{k}:{v}" for k, v in tags), tags


class ThresholdEvaluator(Evaluator):
    monitor: ThresholdMonitor

    def __init__(self, monitor: ThresholdMonitor, all_devices: Iterable[str]) -> None:
        super().__init__(monitor, all_devices)
        self.windows: dict[str, deque[tuple[float, float]]] = {}
        self.tags: dict[str, tuple[tuple[str, str], ...]] = {}

    def add(self, readings: Iterable[Reading], now: float) -> set[str]:
        touched = set()
        metric = self.monitor.metric
        for r in readings:
            if r.metric != metric or not self.wants(r):
                continue
            key, tags = _group(r, self.monitor.by)
            window = self.windows.get(key)
            if window is None:
                window = self.windows[key] = deque(maxlen=MAX_POINTS)
                self.tags[key] = tags
            window.append((r.ts, r.value))
            touched.add(key)
        return touched

    def groups(self) -> Iterable[str]:
        return list(self.windows)

    def points(self) -> int:
        return sum(len(w) for w in self.windows.values())

    def due(self, now: float) -> Iterable[str]:
        start = now - self.monitor.window
        return [g for g, w in self.windows.items() if w and w[0][0] < start]

    def judge(self, group: str, current: str, now: float) -> Verdict | None:
        m = self.monitor
        window = self.windows.get(group)
        if not window:
            return None
        start = now - m.window
        # Readings arrive roughly in time order; one from a device with a late clock
        # may sit behind newer ones, and goes when it reaches the front.
        while window and window[0][0] < start:
            window.popleft()
        if not window:
            return None
        if m.require_full_window and len(window) < MAX_POINTS and \
                window[0][0] > start + min(60.0, m.window / 10):
            return None  # the window is not full yet: too early to judge
        values = [v for _, v in window]
        value = _aggregate(m.aggregation, values, window)
        return Verdict(_level(m, value, current), value, self.tags[group])


def _aggregate(how: str, values: list[float], window: deque[tuple[float, float]]) -> float:
    if how == "avg":
        return sum(values) / len(values)
    if how == "min":
        return min(values)
    if how == "max":
        return max(values)
    if how == "sum":
        return sum(values)
    if how == "count":
        return float(len(values))
    return max(window)[1]  # last: the newest by time


def _level(m: ThresholdMonitor, value: float, current: str) -> str:
    """ALERT, WARN or OK, with hysteresis: leaving a level needs its recovery value."""
    up = m.comparison == "above"

    def past(limit: float) -> bool:
        return value > limit if up else value < limit

    def not_recovered(limit: float | None, level: float) -> bool:
        limit = level if limit is None else limit
        return value > limit if up else value < limit

    if m.critical is not None and past(m.critical):
        return ALERT
    if current == ALERT and m.critical is not None and m.critical_recovery is not None \
            and not_recovered(m.critical_recovery, m.critical):
        return ALERT
    if m.warning is not None and past(m.warning):
        return WARN
    if current in (ALERT, WARN) and m.warning is not None and m.warning_recovery is not None \
            and not_recovered(m.warning_recovery, m.warning):
        return WARN
    return OK


class StateEvaluator(Evaluator):
    """ALERT (or WARN) once the condition has held for `duration` by the readings' time."""

    monitor: StateMonitor

    def __init__(self, monitor: StateMonitor, all_devices: Iterable[str]) -> None:
        super().__init__(monitor, all_devices)
        #: per group: latest value, and since when the condition has held (None: it does not)
        self.latest: dict[str, tuple[float, float | None]] = {}
        self.tags: dict[str, tuple[tuple[str, str], ...]] = {}

    def add(self, readings: Iterable[Reading], now: float) -> set[str]:
        touched = set()
        m = self.monitor
        for r in readings:
            if r.metric != m.metric or not self.wants(r):
                continue
            key, tags = _group(r, ("device",))
            self.tags[key] = tags
            _, since = self.latest.get(key, (0.0, None))
            # held since its first reading that met the condition; broken by any that does not
            since = (r.ts if since is None else since) if m.holds(r.value) else None
            self.latest[key] = (r.value, since)
            touched.add(key)
        return touched

    def groups(self) -> Iterable[str]:
        return list(self.latest)

    def points(self) -> int:
        return len(self.latest)

    def due(self, now: float) -> Iterable[str]:
        return [g for g, (_, since) in self.latest.items() if since is not None]

    def judge(self, group: str, current: str, now: float) -> Verdict | None:
        if group not in self.latest:
            return None
        value, since = self.latest[group]
        m = self.monitor
        if since is None:
            status = OK
        elif now - since >= m.duration:
            status = ALERT if m.level == "critical" else WARN
        else:
            # Held, not yet long enough: an open alert stays open, a calm group stays calm.
            status = current if current in (ALERT, WARN) else OK
        return Verdict(status, value, self.tags[group])

    def held_since(self, group: str) -> float | None:
        return self.latest.get(group, (0.0, None))[1]


class NoDataEvaluator(Evaluator):
    """NO DATA after `timeframe` without a reading (by the gateway's clock, when it was
    committed), or at once when the device's last will says it went offline."""

    monitor: NoDataMonitor

    def __init__(self, monitor: NoDataMonitor, all_devices: Iterable[str], now: float) -> None:
        super().__init__(monitor, all_devices)
        # Nothing heard yet counts from now: a restart does not make every device silent.
        self.heard: dict[str, float] = {f"device:{d}": now for d in self.devices}
        self.offline: set[str] = set()

    def add(self, readings: Iterable[Reading], now: float) -> set[str]:
        touched = set()
        metric = self.monitor.metric
        for r in readings:
            if not self.wants(r):
                continue
            key = f"device:{r.tags['device']}"
            if r.metric == "device.online":
                if r.value == 0:
                    self.offline.add(key)
                else:
                    self.offline.discard(key)
                    self.heard[key] = now
                touched.add(key)
            elif not metric or r.metric == metric:
                self.heard[key] = now
                self.offline.discard(key)
                touched.add(key)
        return touched

    def groups(self) -> Iterable[str]:
        return list(self.heard)

    def points(self) -> int:
        return len(self.heard)

    @property
    def metric(self) -> str:
        return ""  # every reading: a last will (device.online) counts whatever its metric

    def due(self, now: float) -> Iterable[str]:
        quiet = now - self.monitor.timeframe
        return [g for g, t in self.heard.items() if t < quiet or g in self.offline]

    def judge(self, group: str, current: str, now: float) -> Verdict | None:
        tags = (("device", group.removeprefix("device:")),)
        if group in self.offline or now - self.heard.get(group, now) > self.monitor.timeframe:
            return Verdict(NO_DATA, None, tags)
        return Verdict(OK, None, tags)

    def silent_for(self, group: str, now: float) -> float:
        return now - self.heard.get(group, now)


def evaluator(monitor: MonitorCommon, devices: Iterable[str], now: float) -> Evaluator:
    if isinstance(monitor, ThresholdMonitor):
        return ThresholdEvaluator(monitor, devices)
    if isinstance(monitor, StateMonitor):
        return StateEvaluator(monitor, devices)
    if isinstance(monitor, NoDataMonitor):
        return NoDataEvaluator(monitor, devices, now)
    raise TypeError(f"no evaluator for monitor type {type(monitor).__name__}")
