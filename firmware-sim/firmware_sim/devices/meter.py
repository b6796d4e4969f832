"""One switched, metered output of a smart plug or relay: relay state, power, energy.

Energy is the integral of the power samples (taken every `step` simulated
seconds and at every switch), so totals only ever grow and agree with the
power the device reported.
"""

from __future__ import annotations

import random
from typing import Any

from firmware_sim.loads import Load


class Meter:
    """Relay plus energy meter for one channel."""

    def __init__(self, load: Load, on: bool, now: float, rng: random.Random,
                 energy_wh: float = 0.0, voltage: float = 239.0) -> None:
        self.load = load
        self.on = on
        self.since = now
        self.rng = rng
        self.energy_wh = energy_wh
        self.nominal_voltage = voltage
        self.voltage = voltage
        self.watts = 0.0
        self.pf = 1.0
        self.last = now

    def sample(self, now: float, env: Any) -> None:
        """Integrate energy up to `now`, then take a new power reading."""
        if now > self.last:
            self.energy_wh += self.watts * (now - self.last) / 3600.0
            self.last = now
        self.voltage = self.nominal_voltage + self.rng.gauss(0, 1.2)
        if self.on:
            self.watts, self.pf = self.load.power(now, self.since, self.rng, env)
        else:
            self.watts, self.pf = 0.0, 0.0

    def switch(self, on: bool, now: float, env: Any) -> bool:
        """Set the relay; True if it changed."""
        if on == self.on:
            return False
        self.sample(now, env)
        self.on = on
        self.since = now
        self.sample(now, env)
        return True

    @property
    def apparent(self) -> float:
        return self.watts / self.pf if self.pf > 0 else 0.0

    @property
    def reactive(self) -> float:
        s, p = self.apparent, self.watts
        return max(0.0, s * s - p * p) ** 0.5

    @property
    def current(self) -> float:
        return self.apparent / self.voltage if self.voltage > 0 else 0.0
