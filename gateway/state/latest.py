"""Latest-value state: each device's newest reading per series, and whether it is online.

A listener of the ingest stage's fan-out (gateway.ingest.fanout): it hears of
readings only once they are committed, so it only ever shows accepted ones,
even while the store refuses writes. `gateway status`, the demo's live view
and (later) the monitors read it; it never reaches into sources or sinks.

A retained MQTT message delivered on subscribing is the last known state of its
topic, of unknown age, not a new reading (DESIGN.md): it fills in a series
nothing live has been heard for, marked as retained, and does not make the
device look recently heard (`last_seen` stays as it was).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.model import CONTEXT_TAGS, Reading


class LatestValues:
    """Newest value of every series, grouped by device."""

    def __init__(self, base_tags: Mapping[str, Mapping[str, str]]) -> None:
        # The tags every reading of a device carries; anything more (channel,
        # climate...) tells two series of one metric apart.
        self._base = {device: frozenset(tags) for device, tags in base_tags.items()}
        self._lock = threading.Lock()
        self._values: dict[str, dict[str, tuple[float, str, float]]] = {}
        self._seen: dict[str, float] = {}
        #: series whose value came from a retained message, by device
        self._retained: dict[str, set[str]] = {}

    def _label(self, r: Reading, device: str) -> str:
        label = r.metric
        if len(r.tags) > len(self._base[device]):
            extra = [f"{k}={v}" for k, v in r.tags.items()
                     if k not in self._base[device] and k not in CONTEXT_TAGS]
            if extra:
                label = f"{r.metric}{{{','.join(sorted(extra))}}}"
        return label

    def update(self, readings: Iterable[Reading]) -> None:
        """Readings heard live (committed): they replace any value, and date `last_seen`."""
        with self._lock:
            values, seen, base = self._values, self._seen, self._base
            for r in readings:
                device = r.tags.get("device")
                if device is None or device not in base or r.metric.startswith("gateway."):
                    # The gateway's own metrics; some are labelled with the device they
                    # are about (gateway.device_time_rejected), which must not make it
                    # look recently heard.
                    continue
                label = self._label(r, device)
                per = values.get(device)
                if per is None:
                    per = values[device] = {}
                per[label] = (r.value, r.unit, r.ts)
                retained = self._retained.get(device)
                if retained:
                    retained.discard(label)
                if r.ts > seen.get(device, 0.0):
                    seen[device] = r.ts

    def committed(self, readings: Iterable[Reading]) -> None:
        self.update(readings)

    def retained(self, readings: Iterable[Reading]) -> None:
        self.remember(readings)

    def remember(self, readings: Iterable[Reading]) -> None:
        """The last known state from retained messages: fills in, never dates or overrides.

        A value heard live is never replaced: the broker's retained copy of a
        topic may be older than what was heard since (a device can publish its
        state retained once and its readings unretained afterwards).
        """
        with self._lock:
            for r in readings:
                device = r.tags.get("device")
                if device is None or device not in self._base:
                    continue
                label = self._label(r, device)
                per = self._values.setdefault(device, {})
                retained = self._retained.setdefault(device, set())
                if label in per and label not in retained:
                    continue
                per[label] = (r.value, r.unit, r.ts)
                retained.add(label)

    def value(self, device: str, series: str) -> float | None:
        """The newest value of one series of a device (`plug.power`, or with its extra
        tags `plug.power{channel=1}`), heard live or retained; None if never."""
        with self._lock:
            got = self._values.get(device, {}).get(series)
        return None if got is None else got[0]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """{device: {online, last_seen, values: {series: [value, unit]}, retained}} per device.

        `retained` lists the series whose value is only the broker's retained
        copy (its age unknown); `last_seen` counts only what was heard live.
        """
        with self._lock:
            out: dict[str, dict[str, Any]] = {}
            for device in self._base:
                per = self._values.get(device, {})
                online = per.get("device.online")
                out[device] = {
                    "online": None if online is None else bool(online[0]),
                    "last_seen": self._seen.get(device),
                    "values": {k: [v, unit] for k, (v, unit, _) in sorted(per.items())},
                    "retained": sorted(self._retained.get(device, set()) & per.keys()),
                }
            return out
