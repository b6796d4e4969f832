"""The gateway's own counters and gauges, read by self-metrics, /metrics and status.

Several threads write them (ingest, the event loop's forwarders, the MQTT
network threads), so every update and every snapshot takes the lock.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]


def labels(**kw: str) -> Labels:
    return tuple(sorted(kw.items()))


@dataclass
class Stats:
    """Named counters (monotonic) and gauges, each with a label set."""

    counters: dict[str, dict[Labels, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    gauges: dict[str, dict[Labels, float]] = field(default_factory=lambda: defaultdict(dict))
    info: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inc(self, name: str, n: float = 1, **kw: str) -> None:
        with self._lock:
            self.counters[name][labels(**kw)] += n

    def set(self, name: str, value: float, **kw: str) -> None:
        with self._lock:
            self.gauges[name][labels(**kw)] = value

    def get(self, name: str, **kw: str) -> float:
        key = labels(**kw)
        if name in self.gauges and key in self.gauges[name]:
            return self.gauges[name][key]
        return self.counters.get(name, {}).get(key, 0.0)

    def total(self, name: str) -> float:
        return sum(self.counters.get(name, {}).values())

    def snapshot(self) -> tuple[dict[str, dict[Labels, float]], dict[str, dict[Labels, float]]]:
        with self._lock:
            counters = {k: dict(v) for k, v in list(self.counters.items())}
            gauges = {k: dict(v) for k, v in list(self.gauges.items())}
        return counters, gauges
