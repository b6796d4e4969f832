"""The records that flow through the gateway: what a source hands on (RawMessage),
a tagged metric (Reading), and a stored reading as sinks get it (Row, with its
SeriesInfo and, for a compacted row, its Rollup).

This module imports nothing of the project, so every layer can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["gauge", "count", "rate"]
Priority = Literal["critical", "high", "normal", "low"]
#: How old readings of a series may be rolled up when the store must shrink:
#: mean (a level: power, temperature), last (a running total: energy, uptime),
#: sum (a count of events), changes (a state: only runs of one value are folded).
RollupKind = Literal["mean", "last", "sum", "changes"]

PRIORITIES: tuple[str, ...] = ("critical", "high", "normal", "low")


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


#: tags that say when a reading was taken, not which series it belongs to (a vehicle's
#: trip): stored and sent with it, but the latest value of a series and a monitor's
#: groups do not split on them
CONTEXT_TAGS = frozenset({"trip"})


@dataclass(frozen=True, slots=True)
class RawMessage:
    """What a source hands on: where it came from, the bytes, and when it arrived.

    `origin` names where it came from within its `kind` of source: an MQTT
    topic for "mqtt"; a serial port, a pin or a check's name for the sources to
    come. `retained` is set for an MQTT message the broker delivered because the
    gateway subscribed (the broker's stored copy of the topic's last message,
    of unknown age), not because it was published while the gateway listened.
    """

    origin: str
    payload: bytes
    received: float
    retained: bool = False
    kind: str = "mqtt"


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    metric: str
    type: str
    unit: str
    priority: str
    tags: dict[str, str]
    rollup: str = "mean"


@dataclass(frozen=True, slots=True)
class Rollup:
    """What a compacted row stands for: `samples` readings from its `ts` to `last_ts_ms`.

    The row's own value is the mean (levels), the last value (running totals) or
    the sum (counts) of those readings, by its series' rollup kind.
    """

    samples: int
    min: float
    max: float
    last: float
    last_ts_ms: int

    @property
    def last_ts(self) -> float:
        return self.last_ts_ms / 1000.0

    def as_dict(self) -> dict[str, float | int]:
        return {"samples": self.samples, "min": self.min, "max": self.max, "last": self.last,
                "until": self.last_ts}

    def companions(self, kind: str) -> list[tuple[str, float]]:
        """Extra values a sink sends beside the row's value, as (name suffix, value).

        A mean gets min, max and last; a running total min and max (its value is
        the last); a count only how many readings it sums; a folded state only
        how many reports it stands for.
        """
        if kind == "mean":
            return [("min", self.min), ("max", self.max), ("last", self.last),
                    ("samples", float(self.samples))]
        if kind == "last":
            return [("min", self.min), ("max", self.max), ("samples", float(self.samples))]
        return [("samples", float(self.samples))]


@dataclass(slots=True)
class Row:
    """A stored reading with its row id (what a sink's cursor counts).

    `series` identifies metric + tags + unit + type + priority, so sinks can
    cache what they make of a series; `ts_ms` is unique per series. A row made
    by compaction carries its `rollup`; `samples` is how many readings it holds.
    Not frozen: a frozen dataclass's __init__ costs twice as much, and a sink reads
    a million of these a minute while draining. Treat it as read-only.
    """

    id: int
    series: int
    ts_ms: int
    value: float
    info: SeriesInfo
    rollup: Rollup | None = None

    @property
    def ts(self) -> float:
        return self.ts_ms / 1000.0

    @property
    def samples(self) -> int:
        return self.rollup.samples if self.rollup is not None else 1

    @property
    def reading(self) -> Reading:
        i = self.info
        return Reading(i.metric, self.value, self.ts, i.type, i.unit, i.tags,  # type: ignore[arg-type]
                       i.priority, i.rollup)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        """The reading as JSON sinks write it, with `rollup` on compacted rows."""
        out = self.reading.as_dict()
        if self.rollup is not None:
            out["rollup"] = self.rollup.as_dict()
        return out


def rollup_kind(metric_type: str, rollup: str | None) -> str:
    """The rollup a series gets: its own if given, else sum for counts and mean otherwise."""
    if rollup:
        return rollup
    return "sum" if metric_type == "count" else "mean"
