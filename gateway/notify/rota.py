"""Who is on duty at a given moment, and who a monitor's notification goes to.

Each person's `available:` windows and `away:` periods are read on the wall
clock of their own time zone (default: the gateway's), so "Mon-Fri
09:00-17:00" means the same hours in winter and in summer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from gateway.clock import Clock
from gateway.config.weekly import WeeklyWindow
from gateway.notify.config import Person


@dataclass(frozen=True)
class Member:
    person: Person
    zone: tzinfo
    windows: tuple[WeeklyWindow, ...]
    away: tuple[tuple[datetime, datetime], ...]

    def available(self, ts: float) -> bool:
        local = datetime.fromtimestamp(ts, self.zone)
        if any(start <= local < end for start, end in self.away):
            return False
        return any(w.contains(local) for w in self.windows)


def _aware(text: str, zone: tzinfo) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


class Rota:
    def __init__(self, people: Sequence[Person], clock: Clock) -> None:
        self.clock = clock
        self.members: dict[str, Member] = {}
        for p in people:
            zone = ZoneInfo(p.timezone) if p.timezone else clock.zone
            self.members[p.name] = Member(
                p, zone, tuple(WeeklyWindow.parse(w) for w in p.available),
                tuple((_aware(a.start, zone), _aware(a.end, zone)) for a in p.away))

    def on_duty(self, ts: float) -> list[str]:
        return [name for name, m in self.members.items() if m.available(ts)]

    def recipients(self, notify: Sequence[str], safety_critical: bool, ts: float
                   ) -> tuple[list[str], str]:
        """Names to tell, and why those (for the record): named people are told whatever
        their hours; 'on_duty' adds whoever is available now; 'everyone' is everyone. A
        safety-critical monitor that would reach nobody reaches everyone."""
        names: list[str] = []
        why = []
        for who in notify:
            if who == "everyone":
                names.extend(self.members)
                why.append("everyone")
            elif who == "on_duty":
                duty = self.on_duty(ts)
                names.extend(duty)
                why.append("on duty: " + (", ".join(duty) or "nobody"))
            elif who in self.members:
                names.append(who)
        unique = list(dict.fromkeys(names))
        if not unique and safety_critical:
            unique = list(self.members)
            why.append("safety-critical and nobody on duty: everyone")
        return unique, "; ".join(why) or "named"
