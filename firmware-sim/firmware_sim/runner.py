"""Running a scenario: build the site, schedule its bookings and events, pace the clock.

Simulated time runs `speed` times faster than the wall clock (None: as fast as
possible, for recordings). Pacing only decides when each event runs, never
what it does, so the messages depend on the seed and start alone.

Steps outside any device reach the world around the simulator through hooks:
`broker-restart` calls "broker-down" then "broker-up", `uplink-down` calls
"uplink-down" then "uplink-up" (e.g. commands given on the command line, or a
test's fixture stopping VictoriaMetrics). Without a hook the step is only
reported, and the devices behave as the step says.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from dateutil.rrule import rrulestr

from firmware_sim.devices.base import MqttDevice, ScenarioError
from firmware_sim.engine import Simulation
from firmware_sim.network import Network, Recording
from firmware_sim.scenario import (
    RUN_ACTIONS,
    Booking,
    Event,
    Scenario,
    format_duration,
    parse_duration,
)
from firmware_sim.site import Built, build

log = logging.getLogger("firmware_sim")

Hook = Callable[[], None]
Report = Callable[[float, str], None]


def start_time(scenario: Scenario, start: str | None, tz: Any) -> float:
    """The run's start as epoch seconds: --start, else the scenario's, else now (whole second).

    A time of day alone ("08:00") is that time today, in the site's time zone.
    """
    text = start or scenario.start
    if not text or text == "now":
        return float(int(time.time()))
    if len(text) <= 5 and ":" in text:
        text = f"{datetime.now(tz).date().isoformat()}T{text.zfill(5)}"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ScenarioError(f"start {text!r} is not an ISO date-time such as "
                            "2026-01-05T07:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp()


class ScenarioRun:
    """One run of a scenario against a network (a broker, a recording, or none)."""

    def __init__(self, scenario: Scenario, network: Network | None, seed: int = 0,
                 start: str | None = None, speed: float | None = None,
                 hooks: Mapping[str, Hook] | None = None, report: Report | None = None,
                 duration: float | None = None) -> None:
        from zoneinfo import ZoneInfo

        self.scenario = scenario
        self.network = network
        tz = ZoneInfo(scenario.site.timezone)
        self.sim = Simulation(start_time(scenario, start, tz), seed, scenario.site.timezone)
        self.end = self.sim.start + (duration if duration is not None else scenario.duration)
        self.speed = speed
        self.hooks = dict(hooks or {})
        self.report = report or (lambda ts, text: log.info("%s", text))
        self.built: Built = build(scenario.site, self.sim, scenario.devices)
        self.stop_event = threading.Event()
        self._wall0 = 0.0
        self._check_targets()

    # -- set-up --------------------------------------------------------------------------------

    def _check_targets(self) -> None:
        """Fail before running if a step names a device the site does not have."""
        targets = self.built.targets
        for event in self.scenario.events:
            if event.device is not None and event.device not in targets:
                raise ScenarioError(f"{event.where}: device {event.device!r} is not at the site "
                                    f"(it has {', '.join(targets)})")
            target: Any = targets[event.device] if event.device else self.built.world
            if event.action not in RUN_ACTIONS and event.action not in target.actions:
                what = f"device {event.device!r}" if event.device else "the world"
                raise ScenarioError(f"{event.where}: {what} cannot {event.action!r}; it can: "
                                    f"{', '.join(target.actions)}")
        for booking in self.scenario.bookings:
            for use in booking.uses:
                if use.split(":")[0] not in targets:
                    raise ScenarioError(f"{self.scenario.path}: booking {booking.name!r} uses "
                                        f"{use!r}, which the site does not have")

    def gateway_devices(self) -> list[dict[str, Any]]:
        return self.built.gateway_devices()

    def gateway_sources(self) -> list[dict[str, Any]]:
        return self.built.gateway_sources()

    def _schedule(self) -> None:
        sim = self.sim
        for event in self.scenario.events:
            sim.at(sim.start + event.at, lambda e=event: self._event(e))  # type: ignore[misc]
        for booking in self.scenario.bookings:
            self._schedule_booking(booking)

    def _schedule_booking(self, booking: Booking) -> None:
        sim = self.sim
        heating = self.scenario.site.heating
        heater = heating.get("device")
        preheat = parse_duration(heating.get("preheat", "1h"), "heating.preheat")
        hour, minute = (int(x) for x in booking.at.split(":"))
        first = sim.local(sim.start).replace(hour=hour, minute=minute, second=0, microsecond=0)
        try:
            rule = rrulestr(booking.rrule, dtstart=first)
        except (ValueError, TypeError) as exc:
            raise ScenarioError(f"booking {booking.name!r}: rrule {booking.rrule!r}: {exc}"
                                ) from None
        window_start = sim.local(sim.start) - timedelta(seconds=booking.length)
        for when in rule.between(window_start, sim.local(self.end), inc=True):
            t0 = when.timestamp()
            t1 = t0 + booking.length
            if heater:
                sim.at(t0 - preheat, lambda: self._perform(heater, "comfort", {}))
            sim.at(t0, lambda b=booking: self._booking(b, True))  # type: ignore[misc]
            sim.at(t1, lambda b=booking: self._booking(b, False))  # type: ignore[misc]
            if heater:
                sim.at(t1, lambda: self._perform(heater, "setback", {}))

    # -- steps ---------------------------------------------------------------------------------

    def _perform(self, target: str | None, action: str, args: Mapping[str, Any]) -> None:
        obj = self.built.targets[target] if target else self.built.world
        obj.perform(action, args)

    def _booking(self, booking: Booking, starts: bool) -> None:
        self.report(self.sim.now, f"booking {booking.name!r} {'starts' if starts else 'ends'}")
        self._perform(None, "occupy" if starts else "vacate",
                      {"people": booking.people} if starts else {})
        for use in booking.uses:
            device, _, channel = use.partition(":")
            self._perform(device, "on" if starts else "off",
                          {"channel": channel} if channel else {})

    def _hook(self, name: str) -> None:
        hook = self.hooks.get(name)
        if hook is None:
            self.report(self.sim.now, f"{name}: no hook given, so only the devices act it out")
            return
        try:
            hook()
        except Exception as exc:  # noqa: BLE001 - a hook failing must not stop the scenario
            self.report(self.sim.now, f"{name} hook failed: {exc}")

    def _event(self, event: Event) -> None:
        what = f"{event.device}: " if event.device else ""
        args = ", ".join(f"{k} {format_duration(v)}" if k in ("for", "every") else f"{k} {v}"
                         for k, v in event.args.items())
        self.report(self.sim.now, f"{what}{event.action}" + (f" ({args})" if args else ""))
        length = float(event.args.get("for", 60))
        if event.action == "broker-restart":
            self._hook("broker-down")
            for d in self.built.devices:
                if isinstance(d, MqttDevice):
                    d.perform("broker-lost", {})
            self.sim.after(length, self._broker_back)
        elif event.action == "uplink-down":
            self._hook("uplink-down")
            self.sim.after(length, lambda: self._hook("uplink-up"))
        else:
            self._perform(event.device, event.action, event.args)

    def _broker_back(self) -> None:
        self._hook("broker-up")
        for d in self.built.devices:
            if isinstance(d, MqttDevice):
                d.perform("broker-back", {})

    # -- running -------------------------------------------------------------------------------

    def _pace(self, t: float) -> None:
        if not self.speed:
            if self.stop_event.is_set():
                self.sim.stopped = True
            return
        due = self._wall0 + (t - self.sim.start) / self.speed
        while True:
            wait = due - time.monotonic()
            if wait <= 0 or self.stop_event.wait(min(wait, 0.5)):
                break
        if self.stop_event.is_set():
            self.sim.stopped = True

    def start_devices(self) -> None:
        self.built.world.start()
        for d in self.built.devices:
            d.start(self.network)
        self._schedule()

    def run(self, on_started: Callable[[], None] | None = None,
            progress: Callable[[], None] | None = None, progress_every: float = 10.0) -> None:
        """Start every device and run to the end (or until stop()).

        `on_started` is called once the devices are up; `progress`, on a paced run,
        every `progress_every` seconds of wall-clock time.
        """
        try:
            self.start_devices()
            if on_started is not None:
                on_started()
            # The clock starts once connecting (which takes real time) is done.
            self._wall0 = last = time.monotonic()

            def pace(t: float) -> None:
                nonlocal last
                self._pace(t)
                if progress is not None and self.speed and time.monotonic() - last >= \
                        progress_every:
                    last = time.monotonic()
                    progress()

            self.sim.run_until(self.end, pace)
        finally:
            for d in self.built.devices:
                d.stop()

    def record(self) -> Recording:
        """Run with no broker, as fast as it goes; every message (and will) is kept."""
        recording = Recording(self.sim)
        self.network = recording
        self.run()
        return recording

    def stop(self) -> None:
        self.stop_event.set()
