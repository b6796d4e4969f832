"""The physical world a site's devices share: the hall's air and loads, or the car.

A world advances in fixed simulated steps (its `tick`), so every device reading
it at the same simulated instant sees the same state. Scenario steps without a
device (`ignition-on`, `setpoint`...) go to the world.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from firmware_sim.devices.base import perform_action
from firmware_sim.engine import Simulation


class World:
    """Base of the site worlds. Subclasses set `kind`, `actions` and `tick`."""

    kind: ClassVar[str] = ""
    actions: ClassVar[tuple[str, ...]] = ()
    tick: ClassVar[float] = 30.0  # simulated seconds between physics steps

    def __init__(self, sim: Simulation, params: Mapping[str, Any]) -> None:
        self.sim = sim
        self.params = dict(params)
        self.rng = sim.rng("world")
        self.last = sim.now
        #: every metered output of the site's plugs and relays (a building meter sums them)
        self.metered: list[Any] = []

    def start(self) -> None:
        self.sim.every(self.tick, self._step, first=self.sim.now)

    def _step(self) -> None:
        dt = self.sim.now - self.last
        self.last = self.sim.now
        if dt > 0:
            self.advance(dt)

    def advance(self, dt: float) -> None:
        """Move the physics on by `dt` simulated seconds."""

    def describe(self) -> str:
        return ""

    def perform(self, action: str, args: Mapping[str, Any]) -> None:
        perform_action(self, f"the {self.kind} world", action, args)
