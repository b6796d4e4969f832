"""A Hildebrand Glow reading the hall's SMETS2 meters, as its local MQTT feed publishes.

The electricity meter sees what the hall draws: every simulated plug's and
relay's load (the world's `metered` outputs) plus a base load the plugs do not
see (fridge, emergency lighting, the Pi itself), so its totals agree with the
plugs' sum plus that base load. The gas meter sees the boiler: its heat output
over its efficiency while the relay is on; as a real gas meter, it updates its
totals every 30 minutes. Topics glow/<device_id>/SENSOR/electricitymeter and
.../gasmeter every `period` (10 s), glow/<device_id>/STATE every minute, the
meter's own UTC timestamp in each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from firmware_sim.devices.base import MqttDevice
from firmware_sim.engine import Simulation

#: how often the gas meter's readings change (SMETS2 gas meters wake half-hourly)
GAS_EVERY = 1800.0


class GlowMeter(MqttDevice):
    kind: ClassVar[str] = "glow"
    profile: ClassVar[str] = "glow"
    settings: ClassVar[tuple[str, ...]] = (*MqttDevice.settings, "device_id", "base_watts",
                                           "period", "boiler_efficiency", "import_kwh",
                                           "gas_kwh", "unit_rate", "gas_unit_rate")

    def __init__(self, sim: Simulation, spec: Mapping[str, Any], env: Any) -> None:
        super().__init__(sim, spec, env)
        self.device_id = str(spec.get("device_id") or "70B3D521C0DE")
        self.base_watts = float(spec.get("base_watts", 180.0))
        self.period = float(spec.get("period", 10.0))
        self.efficiency = float(spec.get("boiler_efficiency", 0.9))
        self.import_wh = float(spec.get("import_kwh", 24_000 + 2_000 * self.rng.random())) * 1000
        self.gas_wh = float(spec.get("gas_kwh", 61_000 + 5_000 * self.rng.random())) * 1000
        self.unit_rate = float(spec.get("unit_rate", 0.2462))
        self.gas_unit_rate = float(spec.get("gas_unit_rate", 0.0642))
        self.watts = 0.0
        self.gas_watts = 0.0
        self.last = sim.now
        self.gas_reported_wh = self.gas_wh
        self.gas_reported_at = sim.now
        self.day_start_wh, self.day = self.import_wh, self.sim.local().date()
        self.gas_day_start_wh = self.gas_wh

    def profile_params(self) -> dict[str, Any]:
        return {"device_id": self.device_id}

    def client_id(self) -> str:
        return f"glow-{self.device_id}"

    def on_connected(self) -> None:
        self.sim.every(self.period, self._sensor, first=self.sim.now + 1)
        self.sim.every(60.0, self._state, first=self.sim.now + 2)

    def _integrate(self) -> None:
        now = self.sim.now
        if now > self.last:
            self.import_wh += self.watts * (now - self.last) / 3600
            self.gas_wh += self.gas_watts * (now - self.last) / 3600
            self.last = now
        metered = sum(m.watts for m in getattr(self.env, "metered", ()))
        self.watts = metered + self.base_watts * (1 + 0.03 * self.rng.gauss(0, 1))
        heater = getattr(self.env, "heater_watts", 0.0) * bool(getattr(self.env, "heating", False))
        self.gas_watts = heater / self.efficiency
        today = self.sim.local().date()
        if today != self.day:
            self.day, self.day_start_wh, self.gas_day_start_wh = today, self.import_wh, self.gas_wh

    def _stamp(self) -> str:
        return datetime.fromtimestamp(self.sim.now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _sensor(self) -> None:
        self._integrate()
        if self.sim.now - self.gas_reported_at >= GAS_EVERY:
            self.gas_reported_wh, self.gas_reported_at = self.gas_wh, self.sim.now
        self.publish(f"glow/{self.device_id}/SENSOR/electricitymeter", json.dumps(
            {"electricitymeter": self._block(self.import_wh, self.day_start_wh, self.unit_rate,
                                             "mpan", self.watts)}))
        self.publish(f"glow/{self.device_id}/SENSOR/gasmeter", json.dumps(
            {"gasmeter": self._block(self.gas_reported_wh, self.gas_day_start_wh,
                                     self.gas_unit_rate, "mprn", self.gas_watts)}))

    def _block(self, total_wh: float, day_start_wh: float, rate: float, point: str,
               watts: float) -> dict[str, Any]:
        return {
            "timestamp": self._stamp(),
            "energy": {
                "export": {"cumulative": 0.0, "units": "kWh"},
                "import": {"cumulative": round(total_wh / 1000, 3),
                           "day": round(max(0.0, total_wh - day_start_wh) / 1000, 3),
                           "week": round(max(0.0, total_wh - day_start_wh) / 1000, 3),
                           "month": round(max(0.0, total_wh - day_start_wh) / 1000, 3),
                           "units": "kWh", point: "1234567890", "supplier": "Village Energy",
                           "price": {"unitrate": rate, "standingcharge": 0.5113}}},
            "power": {"value": round(watts / 1000, 3), "units": "kW"},
        }

    def _state(self) -> None:
        self.publish(f"glow/{self.device_id}/STATE", json.dumps({
            "software": "v1.9.2", "timestamp": self._stamp(), "hardware": "GLOW-CAD-01-1v4-SMETS2",
            "ethmac": self.device_id, "smetsversion": "SMETS2", "zigbee": "1.2.5",
            "han": {"rssi": -71, "status": "joined", "lqi": 112}}))

    def describe(self) -> str:
        return f"meter {self.watts:.0f} W, gas {self.gas_watts / 1000:.1f} kW"
