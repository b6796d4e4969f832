"""The van as a world: engine, cooling, electrics and fuel, and a driver following a route.

Each one-second step moves the driver along the route (easing off before slower
legs, corners and the end, as a careful driver does), picks a gear, and from
speed, gear and acceleration works out rpm, engine load, coolant and intake
temperatures, charging voltage and fuel used. The devices read `state()`: an
immutable snapshot swapped in whole after each step, so the ELM327's serving
thread always sees one consistent instant without holding up the simulation.

Rough figures, chosen to look like a small diesel van: idle 800 rpm (higher
while cold), 2000 rpm at 96 km/h in sixth; the coolant reaches its 88 °C
thermostat in about nine minutes at idle and five or six driving, and cools
back with a time constant of an hour when parked; 14.0–14.4 V charging,
about 12.5 V at rest; about 5.5 l/100 km at 96 km/h from a 60 l tank.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar

from firmware_sim.car.routes import Waypoint, bearing_deg, distance_m, parse_route, reverse
from firmware_sim.devices.base import ScenarioError
from firmware_sim.engine import Simulation
from firmware_sim.world import World

# Settings a site's `world:` entry may give, with their defaults.
DEFAULTS: dict[str, Any] = {
    "fuel": 64.0,          # % of the tank at the start
    "tank": 60.0,          # litres
    "ambient": 10.0,       # outside air, °C
    "coolant": None,       # °C at the start; default: the ambient air (parked overnight)
    "odometer": 48_213.0,  # km
    "idle_rpm": 800.0,
    "route": "kilnwick-driffield",  # where `drive` goes when not told; the van starts at its start
    "dtcs": [],            # trouble codes already stored, e.g. [P0133]
    "vin": "WF0XXXTTGXKU12345",
}

GEARS = (3.73, 2.05, 1.32, 0.97, 0.76, 0.62)
RPM_PER_KMH = 33.4  # engine rpm per km/h at a 1:1 gear: 3.9 final drive, 0.31 m wheels
UPSHIFT_RPM, UPSHIFT_HARD_RPM, DOWNSHIFT_RPM = 2200.0, 2600.0, 1100.0
CRANK_SECONDS = 1.5
PLAN_DECEL = 1.5    # m/s², what the driver plans to brake at
MAX_DECEL = 3.0     # m/s², what the brakes give when the plan was late
PULL_OVER_DECEL = 2.0
THERMOSTAT_C = 88.0
DTC_PATTERN = re.compile(r"^[PCBU][0-3][0-9A-F]{3}$")


@dataclass(frozen=True)
class CarState:
    """The van at one simulated instant, as every device reads it."""

    ts: float
    ignition: bool
    running: bool          # the engine turns (cranking included)
    cranking: bool
    rpm: float
    speed_kmh: float
    gear: int              # 0 = neutral / clutch down
    load: float            # calculated engine load, %
    throttle: float        # absolute throttle position, %
    coolant: float         # °C
    intake: float          # intake air, °C
    ambient: float         # °C
    voltage: float         # at the OBD socket, V
    fuel: float            # % of the tank
    odometer: float        # km
    since_clear_km: float  # distance since trouble codes were last cleared
    run_time: float        # seconds since the engine started
    lat: float
    lon: float
    alt: float             # metres above mean sea level
    heading: float         # degrees from true north
    route_left_m: float    # metres of the current route still to drive
    dtcs: tuple[str, ...]
    vin: str

    @property
    def mil(self) -> bool:
        """The check-engine lamp: on while any stored code is set (all ours are emissions codes)."""
        return bool(self.dtcs)


class _Trip:
    """A route being driven: legs, where along them the van is, and the driver's pace per leg."""

    def __init__(self, points: Sequence[Waypoint], pace: Sequence[float]) -> None:
        self.points = list(points)
        self.lengths = [distance_m(a.lat, a.lon, b.lat, b.lon) for a, b in pairwise(points)]
        self.bearings = [bearing_deg(a.lat, a.lon, b.lat, b.lon)
                         for a, b in pairwise(points)]
        self.pace = list(pace)
        self.leg = 0
        self.along = 0.0  # metres into the current leg

    def left_m(self) -> float:
        return self.lengths[self.leg] - self.along + sum(self.lengths[self.leg + 1:])

    def corner_kmh(self, j: int) -> float:
        """How fast to take the turn at point j (between leg j-1 and leg j)."""
        if j <= 0 or j >= len(self.lengths):
            return math.inf
        turn = abs((self.bearings[j] - self.bearings[j - 1] + 180.0) % 360.0 - 180.0)
        return math.inf if turn < 20 else max(15.0, 100.0 - 0.8 * turn)

    def allowed_kmh(self, reaction_m: float) -> float:
        """The fastest the driver will go here, looking ahead to every slower point.

        `reaction_m` is how far the van goes before the next decision: a slower point
        must still be reachable gently from there, or the van would overshoot it.
        """
        allowed = self.points[self.leg].limit * self.pace[self.leg]
        ahead = self.lengths[self.leg] - self.along - reaction_m
        for j in range(self.leg + 1, len(self.points)):
            last = j == len(self.points) - 1
            v_j = 0.0 if last else min(self.points[j].limit * self.pace[j], self.corner_kmh(j))
            v_ms = math.sqrt((v_j / 3.6) ** 2 + 2 * PLAN_DECEL * max(0.0, ahead))
            allowed = min(allowed, v_ms * 3.6)
            if not last:
                ahead += self.lengths[j]
        return allowed

    def move(self, metres: float) -> bool:
        """Go `metres` along; True when the end was reached."""
        self.along += metres
        while self.along >= self.lengths[self.leg]:
            if self.leg == len(self.lengths) - 1:
                self.along = self.lengths[self.leg]
                return True
            self.along -= self.lengths[self.leg]
            self.leg += 1
        return False

    def position(self) -> tuple[float, float, float, float]:
        a, b = self.points[self.leg], self.points[self.leg + 1]
        f = self.along / self.lengths[self.leg] if self.lengths[self.leg] else 1.0
        return (a.lat + f * (b.lat - a.lat), a.lon + f * (b.lon - a.lon),
                a.alt + f * (b.alt - a.alt), self.bearings[self.leg])

    def remainder(self, lat: float, lon: float, alt: float) -> list[Waypoint]:
        """The rest of the route from the van's position (to resume after a stop)."""
        here = Waypoint(lat, lon, alt, self.points[self.leg].limit)
        return [here, *self.points[self.leg + 1:]]


class Vehicle(World):
    """A small diesel van with a driver: the `car` world of a site.

    Parameters (the site's `world:` keys): fuel (%), tank (l), ambient (°C),
    coolant (°C), odometer (km), idle_rpm, route (name of the route `drive`
    takes by default; the van starts parked at its first point), dtcs (codes
    already stored), vin.
    """

    kind: ClassVar[str] = "car"
    actions: ClassVar[tuple[str, ...]] = ("ignition-on", "ignition-off", "drive", "stop", "dtc",
                                          "clear-dtc")
    tick: ClassVar[float] = 1.0

    def __init__(self, sim: Simulation, params: Mapping[str, Any]) -> None:
        super().__init__(sim, params)
        unknown = set(params) - set(DEFAULTS) - {"kind"}
        if unknown:
            raise ScenarioError(f"the car world has no setting(s) {', '.join(sorted(unknown))}; "
                                f"it takes: {', '.join(DEFAULTS)}")
        p = {**DEFAULTS, **{k: v for k, v in params.items() if k != "kind"}}
        try:
            self.tank = float(p["tank"])
            self.ambient = float(p["ambient"])
            self.idle_rpm = float(p["idle_rpm"])
            self.fuel = min(100.0, max(0.0, float(p["fuel"])))
            self.odometer = float(p["odometer"])
            self.coolant = float(p["coolant"]) if p["coolant"] is not None else self.ambient
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"car world: a number was expected ({exc})") from None
        self.home_route = parse_route(p["route"], 0.0, "car world: route")
        self.vin = str(p["vin"])
        start = self.home_route[0]
        self.lat, self.lon, self.alt = start.lat, start.lon, start.alt
        second = self.home_route[1] if len(self.home_route) > 1 else start
        self.heading = bearing_deg(start.lat, start.lon, second.lat, second.lon)
        self.dtcs: list[str] = [self._code(c, "car world: dtcs") for c in p["dtcs"] or []]

        self.ignition = False
        self.started_at: float | None = None  # engine start, simulated time
        self.speed = 0.0      # m/s
        self.accel = 0.0      # m/s² in the last step
        self.gear = 0
        self.rpm = 0.0
        self.load = 0.0
        self.throttle = 0.0
        self.intake = self.ambient
        self.voltage = 12.5
        self.surface_charge = 0.0  # extra volts after charging, fading when parked
        self.since_clear_km = 3_127.0
        self.wander = 0.0     # the driver's drift around the target speed, km/h
        self.trip: _Trip | None = None
        self.stopping = False
        self.interrupted: list[Waypoint] | None = None

        self._lock = threading.Lock()  # advance() and actions vs. the ELM327 thread's clear
        self._state = self._snapshot()

    # -- what devices read ---------------------------------------------------------------------

    def state(self) -> CarState:
        """The latest consistent snapshot (safe to call from any thread)."""
        return self._state

    def clear_dtcs(self) -> None:
        """What the ECU does on an OBD mode 04 request (or a `clear-dtc` step)."""
        with self._lock:
            self.dtcs.clear()
            self.since_clear_km = 0.0
            self._state = self._snapshot()

    # -- physics -------------------------------------------------------------------------------

    def advance(self, dt: float) -> None:
        with self._lock:
            self._drive(dt)
            self._engine(dt)
            self._temperatures(dt)
            self._electrics(dt)
            self._state = self._snapshot()

    def _running(self) -> bool:
        return self.started_at is not None

    def _run_time(self) -> float:
        return self.sim.now - self.started_at if self.started_at is not None else 0.0

    def _drive(self, dt: float) -> None:
        v0 = self.speed
        trip = self.trip
        if trip is None:
            self.speed = self.accel = 0.0
            return
        if self.stopping or not self._running():
            target, floor = 0.0, -PULL_OVER_DECEL
        else:
            # An Ornstein-Uhlenbeck drift: the driver is never exactly on the speed they aim at.
            self.wander += -0.05 * self.wander * dt + self.rng.gauss(0.0, 0.5) * math.sqrt(dt)
            wander = self.wander if v0 * 3.6 > 25 else 0.0
            target = max(0.0, trip.allowed_kmh(v0 * dt) + wander) / 3.6
            if self._run_time() < CRANK_SECONDS + 2:
                target = 0.0  # nobody pulls away while the engine is still catching
            floor = -MAX_DECEL
        top = 2.2 - 0.012 * v0 * 3.6  # a van pulls harder in low gears
        a = min(max((target - v0) / dt, floor), top)
        v1 = max(0.0, v0 + a * dt)
        metres = (v0 + v1) / 2 * dt
        arrived = trip.move(metres)
        self.lat, self.lon, self.alt, self.heading = trip.position()
        self.odometer += metres / 1000
        self.since_clear_km += metres / 1000
        self.accel = (v1 - v0) / dt
        self.speed = v1
        if arrived:
            self.speed = 0.0
            self.trip = None
            self.interrupted = None
            self.stopping = False
        elif v1 == 0.0 and (self.stopping or not self._running()):
            self.interrupted = trip.remainder(self.lat, self.lon, self.alt)
            self.trip = None
            self.stopping = False

    def _engine(self, dt: float) -> None:
        if not self._running():
            self.rpm = self.load = self.throttle = 0.0
            self.gear = 0
            return
        run = self._run_time()
        if run < CRANK_SECONDS:
            self.rpm = 230.0 + self.rng.uniform(-20, 20)
            self.load, self.throttle, self.gear = 0.0, 14.5, 0
            return
        cold = min(1.0, max(0.0, (50.0 - self.coolant) / 50.0))
        idle = self.idle_rpm + 300.0 * cold + 450.0 * math.exp(-(run - CRANK_SECONDS) / 3.0)
        kmh, a = self.speed * 3.6, self.accel
        if kmh < 3.0:
            self.gear = 1 if a > 0.2 else 0
            self.rpm = idle + (500.0 * min(1.0, a / 1.5) if a > 0 else 0.0)  # clutch slipping
        else:
            self.gear = max(1, self.gear)
            upshift = UPSHIFT_HARD_RPM if a > 1.2 else UPSHIFT_RPM
            while self.gear < len(GEARS) and kmh * RPM_PER_KMH * GEARS[self.gear - 1] > upshift:
                self.gear += 1
            while self.gear > 1 and kmh * RPM_PER_KMH * GEARS[self.gear - 1] < DOWNSHIFT_RPM:
                self.gear -= 1
            self.rpm = max(idle, kmh * RPM_PER_KMH * GEARS[self.gear - 1])
        self.rpm += self.rng.gauss(0.0, 6.0)
        if a < -0.4 and kmh > 15:
            self.load, self.throttle = 6.0, 14.5  # on the overrun: no fuel, throttle shut
        else:
            load = 20.0 + 5.0 * cold + 0.2 * kmh + 30.0 * max(0.0, a) / 1.5
            self.load = min(100.0, load + self.rng.gauss(0.0, 0.8))
            self.throttle = min(85.0, max(14.5, 14.5 + 0.7 * (self.load - 20.0)))
        litres_per_hour = 0.1 + self.rpm / 1000 * self.load / 100 * 6.5 if self.load > 6 else 0.0
        self.fuel = max(0.0, self.fuel - litres_per_hour * dt / 3600 / self.tank * 100)

    def _temperatures(self, dt: float) -> None:
        if self._running():
            if self.coolant < THERMOSTAT_C:
                airflow = 1.0 + self.speed * 3.6 / 50
                warm = 0.06 + 0.0045 * self.load - 0.0004 * (self.coolant - self.ambient) * airflow
                self.coolant = min(THERMOSTAT_C + 0.5, self.coolant + warm * dt)
            else:  # the thermostat is open: the radiator holds it near 89–91 °C
                target = 89.0 + 0.05 * self.load
                self.coolant += (target - self.coolant) * (1 - math.exp(-dt / 20.0))
            under_bonnet = self.ambient + (12.0 if self.speed * 3.6 < 20 else 4.0)
            self.intake += (under_bonnet - self.intake) * (1 - math.exp(-dt / 90.0))
        else:
            self.coolant += (self.ambient - self.coolant) * (1 - math.exp(-dt / 3600.0))
            soak = self.ambient + 0.25 * (self.coolant - self.ambient)
            self.intake += (soak - self.intake) * (1 - math.exp(-dt / 600.0))

    def _electrics(self, dt: float) -> None:
        if self._running():
            run = self._run_time()
            if run < CRANK_SECONDS:
                self.voltage = 10.3 + self.rng.uniform(-0.2, 0.2)  # the starter motor's draw
                return
            # The alternator charges hard at first, then settles as the battery fills.
            self.voltage = 14.35 - 0.3 * min(1.0, run / 900.0) + self.rng.gauss(0.0, 0.03)
            self.surface_charge = 0.3
        else:
            self.surface_charge *= math.exp(-dt / 900.0)
            self.voltage = 12.45 + self.surface_charge + self.rng.gauss(0.0, 0.01)

    def _snapshot(self) -> CarState:
        return CarState(
            ts=self.sim.now, ignition=self.ignition, running=self._running(),
            cranking=self._running() and self._run_time() < CRANK_SECONDS,
            rpm=max(0.0, self.rpm), speed_kmh=self.speed * 3.6, gear=self.gear, load=self.load,
            throttle=self.throttle, coolant=self.coolant, intake=self.intake,
            ambient=self.ambient, voltage=self.voltage, fuel=self.fuel, odometer=self.odometer,
            since_clear_km=self.since_clear_km, run_time=self._run_time(), lat=self.lat,
            lon=self.lon, alt=self.alt, heading=self.heading,
            route_left_m=self.trip.left_m() if self.trip is not None else 0.0,
            dtcs=tuple(self.dtcs), vin=self.vin)

    def describe(self) -> str:
        s = self._state
        text = (f"ignition {'on' if s.ignition else 'off'}, {s.speed_kmh:.0f} km/h, "
                f"{s.rpm:.0f} rpm, coolant {s.coolant:.0f} °C, fuel {s.fuel:.0f} %")
        if s.route_left_m:
            text += f", {s.route_left_m / 1000:.1f} km to go"
        if s.dtcs:
            text += ", DTC " + " ".join(s.dtcs)
        return text

    # -- scenario actions ----------------------------------------------------------------------

    @staticmethod
    def _code(value: Any, where: str) -> str:
        code = str(value).strip().upper()
        if not DTC_PATTERN.match(code):
            raise ScenarioError(f"{where}: {value!r} is not a trouble code like P0133 "
                                "(P, C, B or U, a digit 0-3, three hex digits)")
        return code

    def do_ignition_on(self, args: Mapping[str, Any]) -> None:
        """Key to on and crank: the engine catches and idles (fast while cold)."""
        with self._lock:
            if not self.ignition:
                self.ignition = True
                self.started_at = self.sim.now
                self.rpm, self.voltage = 230.0, 10.3
            self._state = self._snapshot()

    def do_ignition_off(self, args: Mapping[str, Any]) -> None:
        """Engine off. If still rolling, the van coasts and brakes to a halt where it is."""
        with self._lock:
            self.ignition = False
            self.started_at = None
            self.rpm = self.load = self.throttle = 0.0
            self.gear = 0
            self._state = self._snapshot()

    def do_drive(self, args: Mapping[str, Any]) -> None:
        """Drive `route` (a name, or [[lat, lon], ...]) from where the van is, then idle there.

        Without a route: carry on with a route left off by `stop`, or else take the
        site's route, or the same route backwards when the van is nearer its end.
        """
        with self._lock:
            if not self._running():
                raise ScenarioError("the car cannot drive with the engine off; "
                                    "put an ignition-on step before the drive")
            if "route" in args:
                route: Sequence[Waypoint] = parse_route(args["route"], self.alt, "drive: route")
            elif self.interrupted is not None:
                route = self.interrupted
            else:
                there, back = self.home_route, reverse(self.home_route)
                route = min((there, back), key=lambda r: distance_m(
                    self.lat, self.lon, r[0].lat, r[0].lon))
            first = route[0]
            if distance_m(self.lat, self.lon, first.lat, first.lon) < 30.0:
                points = [Waypoint(self.lat, self.lon, self.alt, first.limit), *route[1:]]
            else:  # get to the route's start first, on whatever road leads there
                points = [Waypoint(self.lat, self.lon, self.alt, 48.0), *route]
            points = [p for i, p in enumerate(points) if i == 0 or distance_m(
                points[i - 1].lat, points[i - 1].lon, p.lat, p.lon) > 1.0]
            if len(points) < 2:
                return  # already there
            pace = [self.rng.uniform(0.9, 1.0) for _ in points]
            self.trip = _Trip(points, pace)
            self.stopping = False
            self.interrupted = None
            self._state = self._snapshot()

    def do_stop(self, args: Mapping[str, Any]) -> None:
        """Pull over and idle; a later `drive` without a route carries on from here."""
        with self._lock:
            if self.trip is not None:
                self.stopping = True

    def do_dtc(self, args: Mapping[str, Any]) -> None:
        """Store a trouble code (`code`, e.g. P0133) and light the check-engine lamp."""
        if "code" not in args:
            raise ScenarioError("dtc: say which trouble code, e.g. {do: dtc, code: P0133}")
        code = self._code(args["code"], "dtc: code")
        with self._lock:
            if code not in self.dtcs:
                self.dtcs.append(code)
            self._state = self._snapshot()

    def do_clear_dtc(self, args: Mapping[str, Any]) -> None:
        """What a scan tool's "clear codes" does."""
        self.clear_dtcs()
