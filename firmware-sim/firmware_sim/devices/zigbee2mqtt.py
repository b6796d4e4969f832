"""A Zigbee2MQTT bridge and the Zigbee bulbs paired to it.

The bridge holds the one MQTT connection. It publishes, as Zigbee2MQTT does
with the default `output: json`:
- <base>/bridge/state: {"state":"online"} in 2.x, plain "online" in 1.x
  (retained; the will says offline) and <base>/bridge/info;
- <base>/<name>/availability per device (retained): {"state":"online"} in 2.x,
  plain online/offline in 1.x with legacy_availability_payload (its default);
- <base>/<name>: the device's whole state as JSON after every report.
A bulb that loses mains power is marked offline once the availability
timeout for active devices has passed (10 minutes by default) and comes back
on (power_on_behavior "on") when power returns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from firmware_sim.devices.base import MqttDevice, ScenarioError, perform_action
from firmware_sim.engine import Message, Simulation

AVAILABILITY_TIMEOUT = 600.0  # availability.active.timeout, 10 minutes
REPORT_EVERY = 1800.0  # bulbs' own periodic attribute reports


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class ZigbeeBulb:
    """One colour-temperature bulb, reached through its bridge."""

    actions: ClassVar[tuple[str, ...]] = ("on", "off", "dim", "unplug")
    settings: ClassVar[tuple[str, ...]] = ("id", "friendly_name", "priority", "tags", "lit",
                                           "brightness", "color_temp", "linkquality")

    def __init__(self, bridge: Zigbee2MqttBridge, spec: Mapping[str, Any]) -> None:
        self.bridge = bridge
        self.spec = dict(spec)
        self.id = str(spec.get("id", ""))
        unknown = set(spec) - set(self.settings)
        if not self.id or unknown:
            raise ScenarioError(f"bulb {self.id!r} of {bridge.id!r}: needs an id; "
                                f"unknown setting(s): {', '.join(sorted(unknown)) or 'none'}; "
                                f"it takes: {', '.join(self.settings[1:])}")
        self.name = str(spec.get("friendly_name") or self.id.replace("-", "_"))
        self.on = bool(spec.get("lit", False))
        self.brightness = int(spec.get("brightness", 254))
        self.color_temp = int(spec.get("color_temp", 370))
        self.powered = True
        self.rng = bridge.sim.rng(self.id)
        self.lqi = int(spec.get("linkquality", 60 + self.rng.randrange(80)))

    @property
    def topic(self) -> str:
        return f"{self.bridge.base}/{self.name}"

    def state(self) -> dict[str, Any]:
        self.lqi = max(0, min(255, self.lqi + self.rng.randint(-6, 6)))
        return {"brightness": self.brightness, "color_mode": "color_temp",
                "color_temp": self.color_temp, "linkquality": self.lqi,
                "state": "ON" if self.on else "OFF",
                "update": {"installed_version": 16909577, "latest_version": 16909577,
                           "state": "idle"}}

    def availability(self, online: bool) -> Message:
        word = "online" if online else "offline"
        body = _dumps({"state": word}) if self.bridge.version >= 2 else word.encode()
        return Message(f"{self.topic}/availability", body, retain=True)

    def report(self) -> None:
        if self.powered:
            self.bridge.publish(self.topic, _dumps(self.state()))

    def perform(self, action: str, args: Mapping[str, Any]) -> None:
        perform_action(self, f"bulb {self.id!r}", action, args)

    def _command(self, on: bool, brightness: int | None = None) -> None:
        if not self.powered:
            return  # a bulb without power hears no commands
        if brightness is not None:
            self.brightness = max(1, min(254, brightness))
        self.on = on
        self.report()

    def do_on(self, args: Mapping[str, Any]) -> None:
        self._command(True)

    def do_off(self, args: Mapping[str, Any]) -> None:
        self._command(False)

    def do_dim(self, args: Mapping[str, Any]) -> None:
        self._command(True, int(args.get("brightness", 127)))

    def do_unplug(self, args: Mapping[str, Any]) -> None:
        self._unplug(float(args.get("for", 1800)))

    def _unplug(self, seconds: float) -> None:
        self.powered = False
        sim = self.bridge.sim
        if seconds > AVAILABILITY_TIMEOUT:
            sim.after(AVAILABILITY_TIMEOUT, lambda: self.bridge.send(self.availability(False)))
        sim.after(seconds, self._power_back)

    def _power_back(self) -> None:
        self.powered = True
        self.on = True  # power_on_behavior "on"
        self.bridge.send(self.availability(True))
        self.report()

    def gateway_device(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.id, "profile": "zigbee2mqtt",
                                 "friendly_name": self.name}
        if self.bridge.base != "zigbee2mqtt":
            entry["base_topic"] = self.bridge.base
        for key in ("priority", "tags"):
            if self.spec.get(key):
                entry[key] = self.spec[key]
        return entry


class Zigbee2MqttBridge(MqttDevice):
    """Zigbee2MQTT (1.x or 2.x) with its bulbs."""

    kind: ClassVar[str] = "zigbee2mqtt"
    profile: ClassVar[str] = "zigbee2mqtt"
    settings: ClassVar[tuple[str, ...]] = (*MqttDevice.settings, "version", "base_topic", "bulbs")

    def __init__(self, sim: Simulation, spec: Mapping[str, Any], env: Any) -> None:
        super().__init__(sim, spec, env)
        self.version = int(spec.get("version", 2))
        if self.version not in (1, 2):
            raise ScenarioError(f"device {self.id!r}: version must be 1 or 2")
        self.base = str(spec.get("base_topic", "zigbee2mqtt"))
        self.bulbs = [ZigbeeBulb(self, b) for b in spec.get("bulbs", [])]
        for i, bulb in enumerate(self.bulbs):
            sim.every(REPORT_EVERY, bulb.report, first=sim.now + REPORT_EVERY * (i + 1) / 4)

    def children(self) -> dict[str, Any]:
        return {b.id: b for b in self.bulbs}

    def gateway_devices(self) -> list[dict[str, Any]]:
        return [b.gateway_device() for b in self.bulbs]

    def client_id(self) -> str:
        return f"mqttjs_{self.rng.randrange(16**8):08x}"

    def _bridge_state(self, online: bool) -> bytes:
        word = "online" if online else "offline"
        return _dumps({"state": word}) if self.version >= 2 else word.encode()

    def will(self) -> Message:
        return Message(f"{self.base}/bridge/state", self._bridge_state(False), retain=True)

    def birth(self) -> list[Message]:
        version = "2.6.3" if self.version >= 2 else "1.42.0"
        info = {"version": version, "commit": "unknown", "coordinator":
                {"type": "EmberZNet", "meta": {"revision": "7.4.4.0"}},
                "log_level": "info", "permit_join": False}
        out = [Message(f"{self.base}/bridge/state", self._bridge_state(True), retain=True),
               Message(f"{self.base}/bridge/info", _dumps(info), retain=True)]
        for b in self.bulbs:
            out.append(b.availability(b.powered))
            if b.powered:
                out.append(Message(b.topic, _dumps(b.state())))
        return out

    def send(self, msg: Message) -> None:
        self.publish(msg.topic, msg.payload, msg.retain, msg.qos)

    def describe(self) -> str:
        return " ".join(f"{b.name} {'on' if b.on else 'off'}" for b in self.bulbs)
