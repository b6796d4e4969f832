"""The gateway's own health as readings (`gateway.*`), forwarded like any other.

Counters are sent as `count` readings holding the increase since the last
report (none when it did not move, once it has been sent once); backlog,
oldest-reading age, connection and sink state as gauges. The names and what
they mean: `gateway.ownmetrics`.
"""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.health.ownmetrics import CATALOGUE
from gateway.health.stats import Labels, Stats
from gateway.model import Reading
from gateway.store.outbox import Backlog


@dataclass
class SelfMetrics:
    """Makes readings from Stats and the store's backlog, once per interval."""

    gateway_name: str
    tags: Mapping[str, str]
    _last: dict[tuple[str, Labels], float] = field(default_factory=dict)

    def _reading(self, metric: str, value: float, ts: float, mtype: str, unit: str,
                 labels: Labels) -> Reading:
        tags = {**self.tags, "device": self.gateway_name, "gateway": self.gateway_name,
                **dict(labels)}
        # low: when the store must shrink, the hall's readings outlast the gateway's own.
        return Reading(metric, float(value), ts, mtype, unit, tags, "low")  # type: ignore[arg-type]

    def collect(self, stats: Stats, backlogs: list[Backlog], now: float) -> list[Reading]:
        counters, gauges = stats.snapshot()
        out = []
        for name, series in counters.items():
            for labels, total in series.items():
                key = (name, labels)
                last = self._last.get(key)
                self._last[key] = total
                if last is not None and total == last:
                    # Nothing happened: a count with no point is 0 everywhere it is
                    # read, and a Pi need not store and send a zero every interval.
                    continue
                out.append(self._reading(name, total - (last or 0.0), now, "count", "",
                                         labels))
        for name, series in gauges.items():
            for labels, value in series.items():
                out.append(self._reading(name, value, now, "gauge", _unit(name), labels))
        for b in backlogs:
            labels = (("sink", b.sink),)
            out.append(self._reading("gateway.backlog_rows", b.rows, now, "gauge", "", labels))
            out.append(self._reading("gateway.backlog_oldest_age_seconds", b.age(now), now,
                                     "gauge", "s", labels))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out.append(self._reading("gateway.process_max_rss_bytes", rss, now, "gauge", "B", ()))
        return out


def _unit(name: str) -> str:
    known = CATALOGUE.get(name)
    return known.unit if known else ""
