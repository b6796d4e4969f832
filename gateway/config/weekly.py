"""Weekly windows in words, as people say them: `Mon-Fri 09:00-17:00`, `Sat,Sun`,
`daily 19:00-09:00`, `always`.

A window is read on the wall clock of a named time zone, so "09:00" stays 09:00
across the daylight-saving changes (the hour that does not exist in spring is
simply never reached; the hour that repeats in autumn is inside or outside the
window both times). A time range that ends before it starts runs past midnight:
`Fri 19:00-09:00` is Friday evening to Saturday morning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class WeeklyWindow:
    days: frozenset[int]  # 0 = Monday; the day the window starts on
    start: time
    end: time  # end <= start: the window runs past midnight into the next day

    @classmethod
    def parse(cls, text: str) -> WeeklyWindow:
        """Raises ValueError saying what a window looks like."""
        words = text.strip().lower().split()
        if words == ["always"]:
            return cls(frozenset(range(7)), time(0), time(0))
        if not words or len(words) > 2:
            raise ValueError(_USAGE.format(text=text))
        days = _days(words[0]) if not _RANGE.match(words[0]) else frozenset(range(7))
        if days is None:
            raise ValueError(_USAGE.format(text=text))
        clock = words[-1] if (len(words) == 2 or _RANGE.match(words[0])) else "00:00-00:00"
        if len(words) == 2 and _RANGE.match(words[0]):
            raise ValueError(_USAGE.format(text=text))
        m = _RANGE.match(clock)
        if m is None:
            raise ValueError(_USAGE.format(text=text))
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"{text!r}: {clock} is not a time of day (00:00 to 24:00)")
        end = time(0) if h2 == 24 else time(h2, m2)
        return cls(days, time(h1, m1), end)

    def contains(self, local: datetime) -> bool:
        """Whether a wall-clock moment (in the window's time zone) is inside."""
        t, day = local.time().replace(tzinfo=None), local.weekday()
        if self.end > self.start:
            return day in self.days and self.start <= t < self.end
        # whole days (00:00-00:00) or past midnight
        if day in self.days and t >= self.start:
            return True
        return (day - 1) % 7 in self.days and t < self.end


_USAGE = ("{text!r} is not a weekly window: write days and/or a time range, e.g. "
          "'Mon-Fri 09:00-17:00', 'Sat,Sun', 'daily 19:00-09:00' or 'always'")


def _days(word: str) -> frozenset[int] | None:
    if word in ("daily", "every", "everyday"):
        return frozenset(range(7))
    if word == "weekdays":
        return frozenset(range(5))
    if word == "weekends":
        return frozenset({5, 6})
    out: set[int] = set()
    for part in word.split(","):
        first, _, last = part.partition("-")
        if first[:3] not in DAYS or (last and last[:3] not in DAYS):
            return None
        a = DAYS.index(first[:3])
        b = DAYS.index(last[:3]) if last else a
        out.update((a + i) % 7 for i in range((b - a) % 7 + 1))
    return frozenset(out)


def window_problems(key: str, windows: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for i, text in enumerate(windows):
        try:
            WeeklyWindow.parse(text)
        except ValueError as exc:
            out.append((f"{key}[{i}]", str(exc)))
    return out
