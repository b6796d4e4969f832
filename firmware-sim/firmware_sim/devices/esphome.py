"""An ESPHome node that runs the hall's heating: a thermostat driving the boiler relay.

Configured as a typical hall controller would be: a Dallas probe (sensor
"Hall Temperature", accuracy 1 decimal, every 60 s), Wi-Fi signal and uptime
sensors, a `thermostat` climate "Hall Thermostat" and a switch "Boiler
Relay". With the `mqtt:` component's defaults it publishes <node>/status
"online" (retained; the will says "offline") and each entity's state on
<node>/<component>/<object_id>/state, the climate's parts on their own topics
(current_temperature, target_temperature, mode, action).

The thermostat switches the boiler with a hysteresis around the set point.
The committee's programme (comfort before and during bookings, setback
otherwise) reaches it as `comfort` / `setback`; `hold` is someone pressing the
buttons on the wall, which the programme does not undo until `release`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from firmware_sim.devices.base import MqttDevice
from firmware_sim.engine import Message, Simulation

SENSOR_EVERY = 60.0


class EsphomeHeating(MqttDevice):
    """ESPHome heating controller for the hall world (`env` is a firmware_sim.hall.Hall)."""

    kind: ClassVar[str] = "esphome-heating"
    profile: ClassVar[str] = "esphome"
    settings: ClassVar[tuple[str, ...]] = (*MqttDevice.settings, "node", "comfort", "setback",
                                           "hysteresis")
    actions: ClassVar[tuple[str, ...]] = (
        *MqttDevice.actions, "comfort", "setback", "hold", "release", "mode")

    def __init__(self, sim: Simulation, spec: Mapping[str, Any], env: Any) -> None:
        super().__init__(sim, spec, env)
        self.node = str(spec.get("node") or self.id)
        self.comfort = float(spec.get("comfort", 20.0))
        self.setback = float(spec.get("setback", 12.0))
        self.hysteresis = float(spec.get("hysteresis", 0.5))
        self.target = self.setback
        self.held = False
        self.mode = "heat"
        self.relay = False
        self.signal = float(spec.get("signal", -67))
        self.probe_offset = self.rng.gauss(0, 0.2)  # every probe reads a little off
        sim.every(SENSOR_EVERY, self._sensors, first=sim.now + 5)

    def profile_params(self) -> dict[str, Any]:
        return {"node": self.node}

    def _topic(self, component: str, name: str, part: str = "") -> str:
        return f"{self.node}/{component}/{name}/{part + '/' if part else ''}state"

    # -- MQTT ----------------------------------------------------------------------------------

    def will(self) -> Message:
        return Message(f"{self.node}/status", b"offline", retain=True)

    def birth(self) -> list[Message]:
        c = "hall_thermostat"
        return [
            Message(f"{self.node}/status", b"online", retain=True),
            Message(self._topic("climate", c, "mode"), self.mode.encode(), retain=True),
            Message(self._topic("climate", c, "target_temperature"),
                    f"{self.target:.1f}".encode(), retain=True),
            Message(self._topic("climate", c, "action"), self._action().encode(), retain=True),
            Message(self._topic("switch", "boiler_relay"), self._on_off(), retain=True),
        ]

    def _on_off(self) -> bytes:
        return b"ON" if self.relay else b"OFF"

    def _action(self) -> str:
        if self.mode == "off":
            return "off"
        return "heating" if self.relay else "idle"

    # -- the thermostat ------------------------------------------------------------------------

    def reading(self) -> float:
        return float(getattr(self.env, "inside", 15.0)) + self.probe_offset

    def _sensors(self) -> None:
        temp = self.reading()
        up = int(self.sim.now - self.booted_at)
        self.publish(self._topic("sensor", "hall_temperature"), f"{temp:.1f}", retain=True)
        self.publish(self._topic("climate", "hall_thermostat", "current_temperature"),
                     f"{temp:.1f}", retain=True)
        self.publish(self._topic("sensor", "wifi_signal"),
                     f"{round(self.signal + self.rng.gauss(0, 2))}", retain=True)
        self.publish(self._topic("sensor", "uptime"), str(up), retain=True)
        self._control(temp)

    def _control(self, temp: float) -> None:
        want = self.relay
        if self.mode == "off":
            want = False
        elif temp < self.target - self.hysteresis:
            want = True
        elif temp > self.target + self.hysteresis:
            want = False
        if want != self.relay:
            self.relay = want
            if hasattr(self.env, "heating"):
                self.env.heating = want
            self.publish(self._topic("switch", "boiler_relay"), self._on_off(), retain=True)
            self.publish(self._topic("climate", "hall_thermostat", "action"), self._action(),
                         retain=True)

    def _set_target(self, value: float) -> None:
        if value != self.target:
            self.target = value
            self.publish(self._topic("climate", "hall_thermostat", "target_temperature"),
                         f"{value:.1f}", retain=True)
        self._control(self.reading())

    # -- scenario actions ----------------------------------------------------------------------

    def do_comfort(self, args: Mapping[str, Any]) -> None:
        if not self.held:
            self._set_target(float(args.get("value", self.comfort)))

    def do_setback(self, args: Mapping[str, Any]) -> None:
        if not self.held:
            self._set_target(float(args.get("value", self.setback)))

    def do_hold(self, args: Mapping[str, Any]) -> None:
        self.held = True
        self._set_target(float(args.get("value", self.comfort)))

    def do_release(self, args: Mapping[str, Any]) -> None:
        self.held = False
        self._set_target(self.setback)

    def do_mode(self, args: Mapping[str, Any]) -> None:
        value = args.get("value", "heat")
        # YAML reads a bare off as false.
        self.mode = "off" if value is False or str(value).lower() == "off" else "heat"
        self.publish(self._topic("climate", "hall_thermostat", "mode"), self.mode, retain=True)
        self._control(self.reading())

    def describe(self) -> str:
        return (f"set {self.target:.1f} °C, boiler {'on' if self.relay else 'off'}"
                + (" (held)" if self.held else ""))
