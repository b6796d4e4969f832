"""The simulation's clock and event queue: discrete events in simulated time.

Everything a simulated device does is an event at a simulated instant, run in
time order from one queue. Nothing reads the wall clock or a shared random
generator, so a scenario run with the same seed and start emits the same
messages at the same simulated instants, however fast it is replayed.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Message:
    """One MQTT publication, as a device (or the broker, for a last will) makes it."""

    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 1


Action = Callable[[], None]


class Simulation:
    """Simulated time (UTC epoch seconds) and the events waiting to happen."""

    def __init__(self, start: float, seed: int = 0, timezone: str = "UTC") -> None:
        self.start = start
        self.now = start
        self.seed = seed
        self.tz = ZoneInfo(timezone)
        self._queue: list[tuple[float, int, Action]] = []
        self._order = 0
        self.stopped = False

    def rng(self, name: str) -> random.Random:
        """A random generator of its own for `name`: adding a device never changes another's."""
        return random.Random(f"{self.seed}:{name}")

    def local(self, ts: float | None = None) -> datetime:
        """Simulated time as local wall-clock time in the site's time zone."""
        return datetime.fromtimestamp(self.now if ts is None else ts, self.tz)

    def at(self, when: float, action: Action) -> None:
        """Run `action` at simulated time `when` (now, if `when` has passed)."""
        self._order += 1  # equal times run in the order they were scheduled
        heapq.heappush(self._queue, (max(when, self.now), self._order, action))

    def after(self, delay: float, action: Action) -> None:
        self.at(self.now + delay, action)

    def every(self, period: float, action: Action, first: float | None = None,
              until: Callable[[], bool] | None = None) -> None:
        """Run `action` every `period` seconds, from `first` (default: one period from now)."""

        def tick() -> None:
            if until is not None and until():
                return
            action()
            self.after(period, tick)

        self.at(self.now + period if first is None else first, tick)

    def next_time(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def step(self) -> bool:
        """Run the next event. False when nothing is left to run."""
        if not self._queue or self.stopped:
            return False
        when, _, action = heapq.heappop(self._queue)
        self.now = when
        action()
        return True

    def run_until(self, end: float, before_each: Callable[[float], None] | None = None) -> None:
        """Run every event up to simulated time `end`. `before_each(t)` may wait (pacing)."""
        while self._queue and not self.stopped and self._queue[0][0] <= end:
            if before_each is not None:
                before_each(self._queue[0][0])
                if self.stopped:
                    break
            self.step()
        if not self.stopped:
            self.now = max(self.now, end)
