"""Shelly Plus Plug S (Gen2 firmware) with its own MQTT client.

Publishes as firmware 1.x does with "RPC status notifications" and "generic
status update" both enabled:
- on connecting: <prefix>/online "true" (retained; the will is "false"),
  NotifyFullStatus on <prefix>/events/rpc, and status/switch:0, status/sys,
  status/wifi;
- NotifyStatus deltas on events/rpc when the output switches, when apower moves
  by more than the reporting threshold, and every minute for aenergy;
- status/switch:0 (the whole Switch.GetStatus object) after every change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from firmware_sim.devices.base import MqttDevice
from firmware_sim.devices.meter import Meter
from firmware_sim.engine import Message, Simulation
from firmware_sim.loads import make_load

POWER_THRESHOLD = 0.1  # apower change (fraction) worth a NotifyStatus


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class ShellyPlusPlugS(MqttDevice):
    """One Shelly Plus Plug S: one switch component, metered."""

    kind: ClassVar[str] = "shelly-plug"
    profile: ClassVar[str] = "shelly"
    settings: ClassVar[tuple[str, ...]] = (*MqttDevice.settings, "prefix", "load", "relay",
                                           "energy_kwh")
    actions: ClassVar[tuple[str, ...]] = (*MqttDevice.actions, "on", "off")

    def __init__(self, sim: Simulation, spec: Mapping[str, Any], env: Any) -> None:
        super().__init__(sim, spec, env)
        self.mac = "".join(f"{self.rng.randrange(256):02x}" for _ in range(6))
        self.prefix = str(spec.get("prefix") or f"shellyplusplugs-{self.mac}")
        self.meter = Meter(make_load(spec.get("load")), bool(spec.get("relay", True)), sim.now,
                           self.rng, float(spec.get("energy_kwh", 40 * self.rng.random())) * 1000)
        getattr(env, "metered", []).append(self.meter)
        self.rssi = float(spec.get("signal", -60 - 10 * self.rng.random()))
        self.reported_watts = 0.0
        self.minute_wh: list[float] = [0.0, 0.0, 0.0]
        self.minute_start_wh = self.meter.energy_wh
        self.source = "init"
        self.temperature = 32.0
        sim.every(60.0, self._minute, first=(sim.now // 60 + 1) * 60)
        sim.every(10.0, self._watch_power)

    def profile_params(self) -> dict[str, Any]:
        return {"prefix": self.prefix}

    # -- MQTT ----------------------------------------------------------------------------------

    def client_id(self) -> str:
        return self.prefix

    def will(self) -> Message:
        return Message(f"{self.prefix}/online", b"false", retain=True)

    def birth(self) -> list[Message]:
        self.meter.sample(self.sim.now, self.env)
        full = {"ble": {}, "cloud": {"connected": True}, "mqtt": {"connected": True},
                "plugs_ui": {}, "switch:0": self.switch_status(), "sys": self.sys_status(),
                "wifi": self.wifi_status(), "ws": {"connected": False}}
        return [
            Message(f"{self.prefix}/online", b"true", retain=True),
            Message(f"{self.prefix}/events/rpc", _dumps(self._rpc("NotifyFullStatus", full))),
            Message(f"{self.prefix}/status/switch:0", _dumps(self.switch_status())),
            Message(f"{self.prefix}/status/sys", _dumps(self.sys_status())),
            Message(f"{self.prefix}/status/wifi", _dumps(self.wifi_status())),
        ]

    def _rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"src": self.prefix, "dst": f"{self.prefix}/events", "method": method,
                "params": {"ts": round(self.sim.now, 2), **params}}

    def switch_status(self) -> dict[str, Any]:
        m = self.meter
        return {"id": 0, "source": self.source, "output": m.on, "apower": round(m.watts, 1),
                "voltage": round(m.voltage, 1), "current": round(m.current, 3),
                "aenergy": self._aenergy(),
                "temperature": {"tC": round(self.temperature, 1),
                                "tF": round(self.temperature * 9 / 5 + 32, 1)}}

    def _aenergy(self) -> dict[str, Any]:
        return {"total": round(self.meter.energy_wh, 3),
                "by_minute": [round(x * 1000, 3) for x in self.minute_wh],  # mWh
                "minute_ts": int(self.sim.now // 60 * 60)}

    def sys_status(self) -> dict[str, Any]:
        local = self.sim.local()
        return {"mac": self.mac.upper(), "restart_required": False,
                "time": local.strftime("%H:%M"), "unixtime": int(self.sim.now),
                "uptime": int(self.sim.now - self.booted_at), "ram_size": 260920,
                "ram_free": 118000 + self.rng.randrange(4000), "fs_size": 458752,
                "fs_free": 135168, "cfg_rev": 12, "kvs_rev": 0, "schedule_rev": 0,
                "webhook_rev": 0, "available_updates": {}}

    def wifi_status(self) -> dict[str, Any]:
        return {"sta_ip": "192.168.1.61", "status": "got ip", "ssid": "VillageHall",
                "rssi": round(self.rssi + self.rng.gauss(0, 2))}

    # -- telemetry -----------------------------------------------------------------------------

    def _notify(self, delta: dict[str, Any]) -> None:
        self.publish(f"{self.prefix}/events/rpc",
                     _dumps(self._rpc("NotifyStatus", {"switch:0": {"id": 0, **delta}})))
        self.publish(f"{self.prefix}/status/switch:0", _dumps(self.switch_status()))

    def _watch_power(self) -> None:
        self.meter.sample(self.sim.now, self.env)
        w = self.meter.watts
        self.temperature += (30 + w / 40 - self.temperature) * 0.05
        if abs(w - self.reported_watts) > POWER_THRESHOLD * max(self.reported_watts, 5.0):
            self.reported_watts = w
            self._notify({"apower": round(w, 1), "current": round(self.meter.current, 3)})

    def _minute(self) -> None:
        self.meter.sample(self.sim.now, self.env)
        used = self.meter.energy_wh - self.minute_start_wh
        self.minute_start_wh = self.meter.energy_wh
        self.minute_wh = [used, *self.minute_wh[:2]]
        self._notify({"aenergy": self._aenergy()})

    # -- scenario actions ----------------------------------------------------------------------

    def _switch(self, on: bool) -> None:
        if self.meter.switch(on, self.sim.now, self.env):
            self.source = "button"
            self.reported_watts = self.meter.watts
            self._notify({"output": on, "source": self.source})

    def do_on(self, args: Mapping[str, Any]) -> None:
        self._switch(True)

    def do_off(self, args: Mapping[str, Any]) -> None:
        self._switch(False)

    def describe(self) -> str:
        return f"{'on' if self.meter.on else 'off'} {self.meter.watts:.0f} W"
