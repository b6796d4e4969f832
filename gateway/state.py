"""Latest-value state: each device's newest reading per series, and whether it is online.

Fed by the ingest stage after each commit, so it only ever shows accepted
readings. `gateway status`, the demo's live view and (later) the monitors read
it; it never reaches into sources or sinks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.model import Reading


class LatestValues:
    """Newest value of every series, grouped by device."""

    def __init__(self, base_tags: Mapping[str, Mapping[str, str]]) -> None:
        # The tags every reading of a device carries; anything more (channel,
        # climate...) tells two series of one metric apart.
        self._base = {device: frozenset(tags) for device, tags in base_tags.items()}
        self._lock = threading.Lock()
        self._values: dict[str, dict[str, tuple[float, str, float]]] = {}
        self._seen: dict[str, float] = {}

    def update(self, readings: Iterable[Reading]) -> None:
        with self._lock:
            values, seen, base = self._values, self._seen, self._base
            for r in readings:
                device = r.tags.get("device")
                if device is None or device not in base:
                    continue  # the gateway's own metrics
                label = r.metric
                if len(r.tags) > len(base[device]):
                    extra = [f"{k}={v}" for k, v in r.tags.items() if k not in base[device]]
                    label = f"{r.metric}{{{','.join(sorted(extra))}}}"
                per = values.get(device)
                if per is None:
                    per = values[device] = {}
                per[label] = (r.value, r.unit, r.ts)
                if r.ts > seen.get(device, 0.0):
                    seen[device] = r.ts

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """{device: {online, last_seen, values: {series: [value, unit]}}} for every device."""
        with self._lock:
            out: dict[str, dict[str, Any]] = {}
            for device in self._base:
                per = self._values.get(device, {})
                online = per.get("device.online")
                out[device] = {
                    "online": None if online is None else bool(online[0]),
                    "last_seen": self._seen.get(device),
                    "values": {k: [v, unit] for k, (v, unit, _) in sorted(per.items())},
                }
            return out
