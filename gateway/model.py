"""The one record that flows through the gateway: a tagged metric Reading.

This module imports nothing of the project, so every layer can use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["gauge", "count", "rate"]
Priority = Literal["critical", "high", "normal", "low"]
#: How old readings of a series may be rolled up when the store must shrink:
#: mean (a level: power, temperature), last (a running total: energy, uptime),
#: sum (a count of events), changes (a state: only runs of one value are folded).
RollupKind = Literal["mean", "last", "sum", "changes"]

METRIC_TYPES: tuple[str, ...] = ("gauge", "count", "rate")
PRIORITIES: tuple[str, ...] = ("critical", "high", "normal", "low")
ROLLUP_KINDS: tuple[str, ...] = ("mean", "last", "sum", "changes")


@dataclass(slots=True)
class Reading:
    """One measured value of one metric of one device at one moment.

    `ts` is UTC seconds. `tags` always holds `device` (and, once it has passed
    the ingest stage, `gateway` plus the configured tags).
    """

    metric: str
    value: float
    ts: float
    type: MetricType = "gauge"
    unit: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    priority: Priority = "normal"
    #: how compaction may fold old readings of this series; None: by type
    #: (count -> sum, otherwise mean)
    rollup: RollupKind | None = None
    #: `ts` is the device's own clock (read from the payload), not the gateway's
    #: receive time: a step back in it says nothing about the gateway's clock
    device_time: bool = False

    def as_dict(self) -> dict[str, object]:
        """A plain, JSON-ready view (used by `gateway decode` and the MQTT sink)."""
        return {
            "metric": self.metric,
            "value": self.value,
            "ts": self.ts,
            "type": self.type,
            "unit": self.unit,
            "tags": dict(self.tags),
            "priority": self.priority,
        }


@dataclass(frozen=True, slots=True)
class RawMessage:
    """What a source hands on: where it came from, the bytes, and when it arrived.

    `retained` is set for an MQTT message the broker delivered because the
    gateway subscribed (the broker's stored copy of the topic's last message,
    of unknown age), not because it was published while the gateway listened.
    """

    topic: str
    payload: bytes
    received: float
    retained: bool = False


def rollup_kind(metric_type: str, rollup: str | None) -> str:
    """The rollup a series gets: its own if given, else sum for counts and mean otherwise."""
    if rollup:
        return rollup
    return "sum" if metric_type == "count" else "mean"


def is_finite(value: float) -> bool:
    """NaN and infinities are not readings: no sink can store them faithfully."""
    return not (math.isnan(value) or math.isinf(value))
