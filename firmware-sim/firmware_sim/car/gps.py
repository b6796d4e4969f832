"""A GPS receiver in the van: RMC and GGA sentences for the van's position, every second.

It writes on its own schedule, reader or not, as a real receiver's UART does:
on a pseudo-terminal, a sentence is dropped (and counted) when nobody has the
port open or the reader has fallen so far behind that the buffer is full. With
a `Recording` (tests, `gateway-sim run --record`) each sentence, CR LF
included, is recorded as a message on `serial/<id>` instead.

After power-on the receiver has no fix for `fix_after` seconds (a warm start:
it knows roughly where it is and the time) and writes void sentences. Powered
`always` (the default) that happens once, at the start; powered from the
`ignition`, it is silent while the ignition is off and starts again at each
ignition-on. The fix wanders by a couple of metres, as real ones do; satellites
in use drift between 6 and 11.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from firmware_sim.car import nmea
from firmware_sim.car.pty import PseudoTerminal
from firmware_sim.car.routes import EARTH_RADIUS_M
from firmware_sim.car.vehicle import Vehicle
from firmware_sim.devices.base import ScenarioError, SimDevice
from firmware_sim.engine import Message, Simulation
from firmware_sim.network import Network, Recording

GEOID_SEPARATION_M = 46.9  # East Yorkshire; a receiver takes it from its built-in model


class GpsDevice(SimDevice):
    """A GPS receiver on a serial port (a pseudo-terminal), fed by the car world.

    Settings: `period` (seconds between fixes, default 1), `link` (a path to
    make a symlink to the port at, or null), `power` (`always` or `ignition`),
    `fix_after` (seconds from power-on to the first fix, default 6), `talker`
    (`GP`, or `GN` for a multi-constellation receiver).
    """

    kind: ClassVar[str] = "gps"
    actions: ClassVar[tuple[str, ...]] = ("no-fix",)
    settings: ClassVar[tuple[str, ...]] = ("id", "kind", "period", "link", "power", "fix_after",
                                           "talker")

    def __init__(self, sim: Simulation, spec: Mapping[str, Any], env: Any) -> None:
        super().__init__(sim, spec, env)
        if not isinstance(env, Vehicle):
            raise ScenarioError(f"device {self.id!r} (gps) rides in a car: "
                                "the site needs world: {kind: car}")
        self.vehicle = env
        self.period = float(spec.get("period", 1.0))
        self.fix_after = float(spec.get("fix_after", 6.0))
        self.power = str(spec.get("power", "always"))
        self.talker = str(spec.get("talker", "GP"))
        if self.period <= 0:
            raise ScenarioError(f"device {self.id!r} (gps): period must be above 0 seconds")
        if self.power not in ("always", "ignition"):
            raise ScenarioError(f"device {self.id!r} (gps): power is `always` or `ignition`, "
                                f"not {self.power!r}")
        if self.talker not in ("GP", "GN", "GL", "GA"):
            raise ScenarioError(f"device {self.id!r} (gps): talker is GP, GN, GL or GA")
        self.port: PseudoTerminal | None = None
        self.recording: Recording | None = None
        self.powered_at: float | None = None
        self.stopped = False
        self.sent = 0
        self.dropped = {"no-reader": 0, "buffer-full": 0}
        self.fix: nmea.Fix | None = None
        self._north = self._east = 0.0  # the fix's wander, metres
        self.blind_until = 0.0  # a cutting or a tunnel: no fix until then
        self._satellites = 8

    def start(self, net: Network | None) -> None:
        if isinstance(net, Recording):
            self.recording = net
        else:
            link = self.spec.get("link")
            self.port = PseudoTerminal(str(link) if link else None)
        # Receivers report at the top of each (UTC) second, not at the run's start instant.
        first = math.ceil(self.sim.now / self.period) * self.period
        self.sim.every(self.period, self._report, first=first, until=lambda: self.stopped)

    def _report(self) -> None:
        car = self.vehicle.state()
        now = self.sim.now
        if self.power == "ignition" and not car.ignition:
            self.powered_at = None
            self.fix = None
            return
        if self.powered_at is None:
            self.powered_at = now
        self._wander()
        if now - self.powered_at < self.fix_after or now < self.blind_until:
            self.fix = None
        else:
            dlat = math.degrees(self._north / EARTH_RADIUS_M)
            dlon = math.degrees(self._east / (EARTH_RADIUS_M * math.cos(math.radians(car.lat))))
            self.fix = nmea.Fix(
                lat=car.lat + dlat, lon=car.lon + dlon, alt=car.alt + self._north * 0.8,
                speed_kmh=max(0.0, car.speed_kmh + self.rng.gauss(0.0, 0.05)),
                course=car.heading, satellites=self._satellites,
                hdop=0.7 + 0.1 * (12 - self._satellites) + self.rng.uniform(0, 0.05),
                geoid_sep=GEOID_SEPARATION_M)
        for line in (nmea.rmc(self.talker, now, self.fix), nmea.gga(self.talker, now, self.fix)):
            self._send(line)

    def do_no_fix(self, args: Mapping[str, Any]) -> None:
        """A dead spot: a deep cutting, a tunnel, tall trees; no fix `for` a while (default
        2 minutes), the receiver still sending its sentences, void."""
        from firmware_sim.scenario import parse_duration  # the scenario reads the site

        self.blind_until = self.sim.now + parse_duration(args.get("for", 120), "no-fix: for")

    def _wander(self) -> None:
        # A random walk pulled back to the truth: metres of error that change slowly.
        self._north += self.rng.gauss(0.0, 0.3) - 0.05 * self._north
        self._east += self.rng.gauss(0.0, 0.3) - 0.05 * self._east
        if self.rng.random() < 0.02:  # now and then a satellite rises or sets
            self._satellites = min(11, max(6, self._satellites + self.rng.choice((-1, 1))))

    def _send(self, line: bytes) -> None:
        if self.recording is not None:
            self.recording.add(self.id, Message(f"serial/{self.id}", line, False, 0))
            self.sent += 1
        elif self.port is not None:
            if not self.port.reader_present():
                self.dropped["no-reader"] += 1
            elif self.port.write(line) < len(line):
                self.dropped["buffer-full"] += 1
            else:
                self.sent += 1

    def gateway_devices(self) -> list[dict[str, Any]]:
        return [{"id": self.id, "profile": "nmea", "source": self.id}]

    def gateway_sources(self) -> list[dict[str, Any]]:
        port = self.spec.get("link") or self.endpoint()
        return [{"name": self.id, "type": "serial", "port": str(port)}] if port else []

    def endpoint(self) -> str | None:
        return self.port.path if self.port is not None else None

    def describe(self) -> str:
        if self.powered_at is None:
            state = "off"
        elif self.fix is None:
            state = "no fix yet"
        else:
            f = self.fix
            ns, ew = "N" if f.lat >= 0 else "S", "E" if f.lon >= 0 else "W"
            state = f"fix, {f.satellites} satellites, {abs(f.lat):.5f}{ns} {abs(f.lon):.5f}{ew}"
        drops = ", ".join(f"{n} dropped ({why})" for why, n in self.dropped.items() if n)
        return f"GPS {state}, {self.sent} sentences" + (f", {drops}" if drops else "")

    def stop(self) -> None:
        self.stopped = True
        if self.port is not None:
            self.port.close()
