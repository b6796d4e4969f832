"""What the monitors remember of the readings, shared between monitors that read alike.

Two hundred monitors on a few metrics must not each touch every reading: a
reading updates one store per (metric, scope) it belongs to, and the monitors
read the stores when they judge. What is kept is bounded whatever the rate:

- `WindowStore` (threshold monitors): per group, the trailing window in buckets
  of `width` seconds (count, sum, min, max, last), at most `MAX_BUCKETS` of
  them; `width` is 1/30 of the shortest window on that metric (at least 1 s),
  so a window's old end is judged to within one bucket.
- `LatestStore` (state monitors): per series, the latest value, and the lowest
  and highest value since the monitors last looked (a condition broken between
  two looks is seen).
- `HeardStore` (no_data monitors): when each device, and each of its metrics,
  was last heard, and which devices said they went offline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from gateway.model import CONTEXT_TAGS, Reading

#: most buckets a window group keeps (a bound on memory per group)
MAX_BUCKETS = 400
#: bucket widths a window store may use, seconds
WIDTHS = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)

Tags = tuple[tuple[str, str], ...]


def bucket_width(shortest: float, longest: float) -> float:
    """1/30 of the shortest window, from WIDTHS, and wide enough that the longest
    window fits in MAX_BUCKETS."""
    fits = [w for w in WIDTHS if w <= shortest / 30] or [WIDTHS[0]]
    width = fits[-1]
    while longest / width + 1 > MAX_BUCKETS and width < WIDTHS[-1]:
        width = next(w for w in WIDTHS if w > width)
    return width


def group_of(r: Reading, by: tuple[str, ...]) -> tuple[str, Tags]:
    tags = tuple((k, r.tags.get(k, "")) for k in by)
    return ",".join(f"{k}:{v}" for k, v in tags), tags


class WindowStore:
    """One metric's readings of some devices, by group, in time buckets."""

    def __init__(self, metric: str, by: tuple[str, ...], devices: frozenset[str] | None,
                 shortest: float, longest: float) -> None:
        self.metric = metric
        self.by = by
        self.devices = devices
        self.width = bucket_width(shortest, longest)
        self.span = longest + self.width
        #: group -> buckets [start, count, sum, min, max, last_ts, last_value], oldest first
        self.groups: dict[str, deque[list[float]]] = {}
        self.tags: dict[str, Tags] = {}
        self._cache: dict[tuple[str, str, float], float | None] = {}
        self.by_device = by == ("device",)
        self._keys: dict[str, str] = {}

    def add(self, r: Reading) -> str | None:
        """Take a reading; its group, or None when it is not this store's."""
        device = r.tags.get("device")
        if self.devices is not None and device not in self.devices:
            return None
        if self.by_device:
            key = self._keys.get(device)  # type: ignore[arg-type]
            if key is None:
                key = self._keys[device] = f"device:{device}"  # type: ignore[index]
                self.tags[key] = (("device", str(device)),)
        else:
            key, tags = group_of(r, self.by)
            self.tags[key] = tags
        buckets = self.groups.get(key)
        if buckets is None:
            buckets = self.groups[key] = deque()
        ts, v = r.ts, r.value
        start = ts - ts % self.width
        if buckets and buckets[-1][0] == start:
            b = buckets[-1]
        elif not buckets or start > buckets[-1][0]:
            buckets.append([start, 1, v, v, v, ts, v])
            self._trim(buckets, ts)
            return key
        else:  # a reading older than the newest bucket (a late device clock): find its own
            b = next((b for b in reversed(buckets) if b[0] == start), None)
            if b is None:
                if start < buckets[0][0] - self.span:
                    return key  # older than any window: nothing to add it to
                buckets.append([start, 1, v, v, v, ts, v])
                ordered = sorted(buckets, key=lambda b: b[0])
                buckets.clear()
                buckets.extend(ordered)
                return key
        _fold(b, ts, v)
        return key

    def add_many(self, readings: Iterable[Reading], dirty: set[str]) -> None:
        """Take readings of this store's metric; their groups go into `dirty`. The common
        case (grouped by device, a reading in its group's newest bucket) is taken without
        `add`'s grouping: this runs for every reading a monitor watches."""
        if not self.by_device:
            for r in readings:
                key = self.add(r)
                if key is not None:
                    dirty.add(key)
            return
        devices, keys, groups, width = self.devices, self._keys, self.groups, self.width
        for r in readings:
            device = r.tags.get("device")
            if devices is not None and device not in devices:
                continue
            key = keys.get(device)  # type: ignore[arg-type]
            buckets = groups.get(key) if key is not None else None
            if buckets:
                ts = r.ts
                b = buckets[-1]
                if b[0] <= ts < b[0] + width:
                    _fold(b, ts, r.value)
                    dirty.add(key)  # type: ignore[arg-type]
                    continue
            key = self.add(r)
            if key is not None:
                dirty.add(key)

    def _trim(self, buckets: deque[list[float]], now: float) -> None:
        oldest = now - self.span
        while buckets and (buckets[0][0] + self.width <= oldest or len(buckets) > MAX_BUCKETS):
            buckets.popleft()

    def aggregate(self, group: str, how: str, window: float, now: float) -> float | None:
        """`how` over the buckets that reach into (now - window, now]; None: empty."""
        key = (group, how, window)
        if key in self._cache:
            return self._cache[key]
        buckets = self.groups.get(group)
        value = None
        if buckets:
            self._trim(buckets, now)
            start = now - window
            inside = [b for b in buckets if b[0] + self.width > start]
            if inside:
                value = _combine(how, inside)
        self._cache[key] = value
        return value

    def first(self, group: str) -> float | None:
        """The start of the oldest bucket kept (for require_full_window)."""
        buckets = self.groups.get(group)
        return buckets[0][0] if buckets else None

    def new_pass(self) -> None:
        self._cache.clear()

    def points(self) -> int:
        return sum(len(b) for b in self.groups.values())


def _fold(b: list[float], ts: float, v: float) -> None:
    """One more reading in bucket `b` ([start, count, sum, min, max, last_ts, last])."""
    b[1] += 1
    b[2] += v
    if v < b[3]:
        b[3] = v
    if v > b[4]:
        b[4] = v
    if ts >= b[5]:
        b[5], b[6] = ts, v


def _combine(how: str, inside: list[list[float]]) -> float:
    if how == "avg":
        return sum(b[2] for b in inside) / sum(b[1] for b in inside)
    if how == "sum":
        return sum(b[2] for b in inside)
    if how == "count":
        return float(sum(b[1] for b in inside))
    if how == "min":
        return min(b[3] for b in inside)
    if how == "max":
        return max(b[4] for b in inside)
    return max(inside, key=lambda b: b[5])[6]  # last: the newest reading


class LatestStore:
    """One metric's latest value per series (a device, and its channel or other extra
    tags), with the range of values since the monitors last looked."""

    def __init__(self, metric: str, devices: frozenset[str] | None,
                 base: Mapping[str, frozenset[str]]) -> None:
        self.metric = metric
        self.devices = devices
        self.base = base
        #: series -> [last_ts, last_value, lowest since the look, highest, first ts since]
        self.series: dict[str, list[float]] = {}
        self.tags: dict[str, Tags] = {}
        self.fresh: set[str] = set()

    def add(self, r: Reading) -> str | None:
        device = r.tags.get("device")
        if device is None or (self.devices is not None and device not in self.devices):
            return None
        base = self.base.get(device, frozenset())
        extra = sorted((k, v) for k, v in r.tags.items()
                       if k not in base and k != "device" and k not in CONTEXT_TAGS)
        key = f"device:{device}" + "".join(f",{k}:{v}" for k, v in extra)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = [r.ts, r.value, r.value, r.value, r.ts]
            self.tags[key] = (("device", device), *extra)
        elif key not in self.fresh:
            s[:] = [r.ts, r.value, r.value, r.value, r.ts] if r.ts >= s[0] else \
                [s[0], s[1], r.value, r.value, r.ts]
        else:
            if r.ts >= s[0]:
                s[0], s[1] = r.ts, r.value
            s[2], s[3] = min(s[2], r.value), max(s[3], r.value)
        self.fresh.add(key)
        return key

    def add_many(self, readings: Iterable[Reading], dirty: set[str]) -> None:
        for r in readings:
            key = self.add(r)
            if key is not None:
                dirty.add(key)

    def new_pass(self) -> None:
        self.fresh.clear()

    def points(self) -> int:
        return len(self.series)


class HeardStore:
    """When devices, and each of their metrics, were last heard (the gateway's time)."""

    def __init__(self, devices: Iterable[str], now: float, by_metric: bool = True) -> None:
        # Nothing heard yet counts from now: a restart does not make every device silent.
        self.any: dict[str, float] = dict.fromkeys(devices, now)
        self.metric: dict[tuple[str, str], float] = {}
        #: only when some no_data monitor names a metric
        self.by_metric = by_metric
        self.offline: set[str] = set()
        self.started = now

    def add(self, readings: Sequence[Reading], now: float) -> set[str]:
        """Take a batch; the devices heard in it (a last will counts as heard)."""
        heard = {r.tags.get("device") for r in readings}
        heard.discard(None)
        heard.intersection_update(self.any)
        gone = {r.tags.get("device") for r in readings
                if r.value == 0 and r.metric == "device.online"} if heard else set()
        self.any.update(dict.fromkeys(heard - gone, now))  # type: ignore[arg-type]
        if gone or self.offline:
            self.offline.difference_update(heard - gone)
            self.offline.update(gone & heard)  # type: ignore[arg-type]
        if self.by_metric and heard:
            self.metric.update(dict.fromkeys(
                {(r.tags.get("device", ""), r.metric) for r in readings}, now))
        return heard  # type: ignore[return-value]

    def heard(self, device: str, metric: str) -> float:
        if not metric:
            return self.any.get(device, self.started)
        return self.metric.get((device, metric), self.started)

    def points(self) -> int:
        return len(self.any) + len(self.metric)
