"""Downtimes: recurring quiet times during which routine monitors' notices are recorded
but not sent.

Weekly windows (`Mon-Fri 19:00-09:00`) are read on the wall clock. An RRULE
(python-dateutil, the form Datadog's downtime API takes) gives each start on
the wall clock of its time zone, from a local `start`; each lasts `duration`
counted on the wall clock too, so 19:00 + 14h ends at 09:00 on the nights the
clocks change as on any other. Statuses still change during a downtime: only
telling people waits (and a safety-critical monitor is never silenced).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from gateway.clock import Clock
from gateway.config.weekly import WeeklyWindow
from gateway.notify.config import DowntimeConfig


@dataclass(frozen=True)
class Downtime:
    config: DowntimeConfig
    zone: tzinfo
    windows: tuple[WeeklyWindow, ...]
    rule: rrule | None

    def active(self, ts: float) -> bool:
        local = datetime.fromtimestamp(ts, self.zone)
        if self.rule is None:
            return any(w.contains(local) for w in self.windows)
        wall = local.replace(tzinfo=None)
        start = self.rule.before(wall, inc=True)
        if start is None:
            return False
        # Wall-clock arithmetic on naive times: 19:00 + 14h is 09:00 whatever the offset.
        return wall < start + timedelta(seconds=self.config.duration)

    def covers(self, monitor: str, tags: Iterable[tuple[str, str]]) -> bool:
        c = self.config
        if c.monitors and monitor not in c.monitors:
            return False
        have = {f"{k}:{v}" for k, v in tags}
        return all(t in have for t in c.tags)


class Downtimes:
    def __init__(self, configs: Sequence[DowntimeConfig], clock: Clock) -> None:
        self.all: list[Downtime] = []
        for c in configs:
            zone = ZoneInfo(c.timezone) if c.timezone else clock.zone
            rule = None
            if c.rrule:
                rule = rrulestr(c.rrule, dtstart=datetime.fromisoformat(c.start)
                                .replace(tzinfo=None))
            self.all.append(Downtime(c, zone, tuple(WeeklyWindow.parse(w) for w in c.windows),
                                     rule))  # type: ignore[arg-type]

    def silencing(self, monitor: str, tags: Iterable[tuple[str, str]], ts: float
                  ) -> Downtime | None:
        """The downtime that silences this group now, if any."""
        tags = list(tags)
        for d in self.all:
            if d.covers(monitor, tags) and d.active(ts):
                return d
        return None
