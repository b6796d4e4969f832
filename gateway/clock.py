"""The gateway's one clock: what time it is, how long something took, the site's zone.

Every part whose behaviour depends on time takes a `Clock` instead of calling
`time.time()` itself, so a test can run a week of outage in a minute, step
across a daylight-saving change, or jump the clock back, and see what the real
code does (`ManualClock` here; `tests/reliability/inprocess.py` has one that
runs faster than real time).

- `now()`: UTC seconds, for timestamps and ages (what a reading is stamped with);
- `monotonic()`: seconds that never go back, for intervals, deadlines and timeouts;
- `sleep()` / `asleep()`: wait, in a thread or in the event loop;
- `zone`: the gateway's time zone (`gateway.timezone`), for schedules and for
  device clocks that give local time without an offset.

A `Clock` is callable and returns `now()`, so it stands where a plain
`now()` function used to.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo


class Clock:
    """Real time, in the gateway's zone."""

    def __init__(self, timezone: str = "UTC") -> None:
        self.timezone = timezone
        self.zone: tzinfo = ZoneInfo(timezone)

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def local(self, ts: float | None = None) -> datetime:
        """`ts` (default: now) as an aware datetime in the gateway's zone."""
        return datetime.fromtimestamp(self.now() if ts is None else ts, self.zone)

    def __call__(self) -> float:
        return self.now()


#: the real clock in UTC, for parts built without a config (commands, tests)
SYSTEM = Clock()


class ManualClock(Clock):
    """A clock that moves only when told: `advance(seconds)`, or a sleep.

    Wall time and monotonic time move together; `set_now()` steps wall time
    alone (a clock set right by NTP, a daylight-saving change is not one: UTC
    does not step). Sleeping advances the clock instead of waiting, so it suits
    parts tested on their own (a window, a schedule, a throttle); a whole
    `Gateway` on it would spin its periodic loops (use a clock that runs, as
    tests/reliability/inprocess.py's TestClock does).
    """

    def __init__(self, start: float, timezone: str = "UTC") -> None:
        super().__init__(timezone)
        self._lock = threading.Lock()
        self._now = start
        self._mono = 1000.0

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back: use set_now()")
        with self._lock:
            self._now += seconds
            self._mono += seconds

    def set_now(self, ts: float) -> None:
        with self._lock:
            self._now = ts

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)
