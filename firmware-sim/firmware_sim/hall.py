"""The village hall's physical world: outside weather, the hall's air, people in it.

The hall is one thermal mass: heat from the boiler and from people, lost to
the outside through the walls (UA, W/K). With the defaults the hall cools
from 20 °C towards the outside air with a time constant of about three hours
and warms by about 8 °C in the first hour of heating, as a draughty
hall with a 15 kW boiler does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from firmware_sim.engine import Simulation
from firmware_sim.world import World


class Hall(World):
    """Temperatures (°C) and occupancy of one hall."""

    kind: ClassVar[str] = "hall"
    actions: ClassVar[tuple[str, ...]] = ("occupy", "vacate", "weather")
    tick: ClassVar[float] = 30.0

    def __init__(self, sim: Simulation, params: Mapping[str, Any]) -> None:
        super().__init__(sim, params)
        self.outside_mean = float(params.get("outside_mean", 6.0))
        self.outside_swing = float(params.get("outside_swing", 4.0))
        self.ua = float(params.get("ua", 400.0))  # W per K lost through walls and draughts
        tau = float(params.get("time_constant_hours", 3.0)) * 3600
        self.capacity = self.ua * tau  # J per K
        self.heater_watts = float(params.get("heater_watts", 15000.0))
        self.inside = float(params.get("inside", 11.0))
        self.weather = 0.0  # slow random walk on top of the daily swing
        self.heating = False  # the boiler relay (set by the heating controller)
        self.people = 0
        self.outside = self._outside()

    def _outside(self) -> float:
        local = self.sim.local()
        hour = local.hour + local.minute / 60
        # Coldest just before dawn, warmest mid-afternoon.
        return (self.outside_mean + self.weather
                + self.outside_swing * math.sin(2 * math.pi * (hour - 9) / 24))

    def advance(self, dt: float) -> None:
        self.weather += self.rng.gauss(0, 0.05) - 0.002 * self.weather
        self.outside = self._outside()
        gain = self.heater_watts * self.heating + 100.0 * self.people
        loss = self.ua * (self.inside - self.outside)
        self.inside += dt * (gain - loss) / self.capacity

    def describe(self) -> str:
        return (f"hall {self.inside:.1f} °C, outside {self.outside:.1f} °C, "
                f"{self.people} people, boiler {'on' if self.heating else 'off'}")

    def do_occupy(self, args: Mapping[str, Any]) -> None:
        self.people += int(args.get("people", 20))

    def do_vacate(self, args: Mapping[str, Any]) -> None:
        self.people = max(0, self.people - int(args.get("people", self.people)))

    def do_weather(self, args: Mapping[str, Any]) -> None:
        """A cold snap or a mild spell: `outside_mean` in °C."""
        self.outside_mean = float(args.get("outside_mean", self.outside_mean))
