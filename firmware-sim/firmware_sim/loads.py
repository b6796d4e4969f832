"""What is plugged into a simulated socket, and how much power it draws.

A load answers one question: with the relay on since `since`, what does it
draw now (watts, power factor)? Thermostatic appliances cycle; electronics
wobble a little; nothing draws power with the relay off.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from firmware_sim.devices.base import ScenarioError


class Load:
    """A steady load such as LED lighting: `watts` give or take `noise` (a fraction)."""

    def __init__(self, watts: float = 10.0, noise: float = 0.01, pf: float = 0.92) -> None:
        self.watts = watts
        self.noise = noise
        self.pf = pf

    def power(self, now: float, since: float, rng: random.Random, env: Any) -> tuple[float, float]:
        return max(0.0, self.watts * (1 + rng.gauss(0, self.noise))), self.pf


class Urn(Load):
    """A 20-litre tea urn: full power until it boils, then its thermostat keeps it hot."""

    def __init__(self, watts: float = 2800.0, boil_minutes: float = 18.0,
                 keep_on: float = 45.0, keep_every: float = 480.0) -> None:
        super().__init__(watts, 0.005, 1.0)
        self.boil = boil_minutes * 60
        self.keep_on = keep_on
        self.keep_every = keep_every

    def power(self, now: float, since: float, rng: random.Random, env: Any) -> tuple[float, float]:
        running = now - since
        heating = running < self.boil or (running - self.boil) % self.keep_every < self.keep_on
        return (super().power(now, since, rng, env)[0] if heating else 0.0), 1.0


class DefibCabinet(Load):
    """An outdoor defibrillator cabinet: a trickle charger, and a heater that works
    harder the colder it is outside (keeping the pads and battery above 5 °C)."""

    def __init__(self, heater_watts: float = 30.0, charger_watts: float = 4.5,
                 cycle: float = 600.0) -> None:
        super().__init__(charger_watts, 0.03, 0.62)
        self.heater_watts = heater_watts
        self.cycle = cycle

    def power(self, now: float, since: float, rng: random.Random, env: Any) -> tuple[float, float]:
        outside = getattr(env, "outside", 8.0)
        duty = min(1.0, max(0.0, (12.0 - outside) / 15.0))
        heater_on = (now - since) % self.cycle < duty * self.cycle
        charger, _ = super().power(now, since, rng, env)
        if heater_on:
            return charger + self.heater_watts * (1 + rng.gauss(0, 0.01)), 0.97
        return charger, self.pf


class SoundSystem(Load):
    """A PA amplifier: a steady idle draw, more and jumpier while people are in."""

    def __init__(self, idle: float = 38.0, playing: float = 160.0) -> None:
        super().__init__(idle, 0.02, 0.9)
        self.playing = playing

    def power(self, now: float, since: float, rng: random.Random, env: Any) -> tuple[float, float]:
        if getattr(env, "people", 0) > 0:
            return max(self.watts, rng.gauss(self.playing, self.playing * 0.3)), 0.9
        return super().power(now, since, rng, env)


_NAMED: dict[str, type[Load]] = {
    "urn": Urn,
    "defib-cabinet": DefibCabinet,
    "sound-system": SoundSystem,
    "lights": Load,
}


def make_load(spec: Any) -> Load:
    """A load from a site file: a name ("urn"), or {kind: name, ...settings}, or {watts: N}."""
    if spec is None:
        return Load(0.0)
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, Mapping):
        raise ScenarioError(f"a load is a name or a mapping, not {spec!r}")
    settings = {k: v for k, v in spec.items() if k != "kind"}
    cls = _NAMED.get(str(spec.get("kind", "lights")))
    if cls is None:
        raise ScenarioError(f"unknown load {spec.get('kind')!r}; known: {', '.join(_NAMED)}")
    try:
        return cls(**settings)
    except TypeError as exc:
        raise ScenarioError(f"load {spec!r}: {exc}") from None
