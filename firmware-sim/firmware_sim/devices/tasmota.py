"""Tasmota firmware on a smart plug or multi-relay energy monitor.

Publishes as Tasmota 14 does with the default FullTopic (%prefix%/%topic%/):
- on connecting: tele/<t>/LWT "Online" (retained; the will is "Offline"),
  tele/<t>/INFO1..3, and the relay state on stat/<t>/RESULT and stat/<t>/POWERn;
- every TelePeriod (default 300 s, the first one shortly after connecting):
  tele/<t>/STATE (uptime, relays, Wi-Fi) and tele/<t>/SENSOR (the ENERGY block:
  one number per field, or arrays on multi-channel devices such as a Shelly 2.5);
- when a relay switches: stat/<t>/RESULT and stat/<t>/POWERn.
Time stamps are local time without a zone, Tasmota's default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from firmware_sim.devices.base import MqttDevice, ScenarioError
from firmware_sim.devices.meter import Meter
from firmware_sim.engine import Message, Simulation
from firmware_sim.loads import make_load

FIRST_TELE_AFTER = 10.0  # seconds from connecting to the first STATE/SENSOR
METER_STEP = 60.0  # seconds between energy integration steps


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _uptime(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 86400}T{s % 86400 // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class TasmotaPlug(MqttDevice):
    """A Tasmota plug or relay with one or more metered channels."""

    kind: ClassVar[str] = "tasmota"
    profile: ClassVar[str] = "tasmota"
    settings: ClassVar[tuple[str, ...]] = (*MqttDevice.settings, "topic", "teleperiod", "module",
                                           "channels", "energy_kwh")
    actions: ClassVar[tuple[str, ...]] = (*MqttDevice.actions, "on", "off", "restart")

    def __init__(self, sim: Simulation, spec: Mapping[str, Any], env: Any) -> None:
        super().__init__(sim, spec, env)
        self.topic = str(spec.get("topic") or self.id.replace("-", "_"))
        self.teleperiod = float(spec.get("teleperiod", 300))
        self.module = str(spec.get("module", "Sonoff S31"))
        channels = spec.get("channels") or [{}]
        if not isinstance(channels, list) or not 1 <= len(channels) <= 8:
            raise ScenarioError(f"device {self.id!r}: channels must be a list of 1 to 8 outputs")
        start_wh = float(spec.get("energy_kwh", 100 + 400 * self.rng.random())) * 1000
        self.meters = [
            Meter(make_load(ch.get("load")), bool(ch.get("relay", False)), sim.now, self.rng,
                  start_wh / len(channels))
            for ch in channels
        ]
        getattr(env, "metered", []).extend(self.meters)
        self.signal = float(spec.get("signal", -55 - 20 * self.rng.random()))
        self.mac = "".join(f"{self.rng.randrange(256):02X}" for _ in range(3))
        self.total_start = self.sim.local(sim.now - 400 * 86400).strftime("%Y-%m-%dT%H:%M:%S")
        self.day = self.sim.local().date()
        self.today_start_wh = self.total_wh - 1000 * 0.2 * self.rng.random()
        self.yesterday_wh = 1000 * 1.5 * self.rng.random()
        self.period_start_wh = self.total_wh
        self.tele_gen = 0
        self.boot_count = 7
        self.booted = True  # INFO1..3 go out on the first connection after a boot
        sim.every(METER_STEP, self.sample)

    @property
    def total_wh(self) -> float:
        return sum(m.energy_wh for m in self.meters)

    def profile_params(self) -> dict[str, Any]:
        return {"topic": self.topic}

    # -- MQTT ----------------------------------------------------------------------------------

    def client_id(self) -> str:
        return f"DVES_{self.mac}"

    def will(self) -> Message:
        return Message(f"tele/{self.topic}/LWT", b"Offline", retain=True)

    def _power_name(self, i: int) -> str:
        return "POWER" if len(self.meters) == 1 else f"POWER{i + 1}"

    def birth(self) -> list[Message]:
        info = [
            {"Info1": {"Module": self.module, "Version": "14.3.0(release-tasmota)",
                       "FallbackTopic": f"cmnd/DVES_{self.mac}_fb/",
                       "GroupTopic": "cmnd/tasmotas/"}},
            {"Info2": {"WebServerMode": "Admin", "Hostname": f"{self.topic}-{self.mac[-4:]}",
                       "IPAddress": f"192.168.1.{20 + int(self.mac[-2:], 16) % 200}"}},
            {"Info3": {"RestartReason": "Power On", "BootCount": self.boot_count}},
        ]
        out = [Message(f"tele/{self.topic}/LWT", b"Online", retain=True)]
        if self.booted:
            out += [Message(f"tele/{self.topic}/INFO{i + 1}", _dumps(x).encode())
                    for i, x in enumerate(info)]
        for i, m in enumerate(self.meters):
            out += self._switched(i, m.on)
        return out

    def _switched(self, i: int, on: bool) -> list[Message]:
        word = "ON" if on else "OFF"
        name = self._power_name(i)
        return [Message(f"stat/{self.topic}/RESULT", _dumps({name: word}).encode()),
                Message(f"stat/{self.topic}/{name}", word.encode())]

    def on_connected(self) -> None:
        self.booted = False
        self.tele_gen += 1  # a reconnect restarts the TelePeriod timer
        gen = self.tele_gen
        self.sim.every(self.teleperiod, self._tele, first=self.sim.now + FIRST_TELE_AFTER,
                       until=lambda: gen != self.tele_gen or not self.online)

    # -- telemetry -----------------------------------------------------------------------------

    def sample(self) -> None:
        """Integrate energy to now and take new power readings (also load mode's per message)."""
        for m in self.meters:
            m.sample(self.sim.now, self.env)
        today = self.sim.local().date()
        if today != self.day:  # Tasmota rolls Today into Yesterday at local midnight
            self.yesterday_wh = self.total_wh - self.today_start_wh
            self.today_start_wh = self.total_wh
            self.day = today

    def _time(self) -> str:
        return self.sim.local().strftime("%Y-%m-%dT%H:%M:%S")

    def _tele(self) -> None:
        self.sample()
        self.publish(f"tele/{self.topic}/STATE", _dumps(self.state()))
        self.publish(f"tele/{self.topic}/SENSOR", _dumps(self.sensor()))

    def state(self) -> dict[str, Any]:
        up = self.sim.now - self.booted_at
        signal = round(self.signal + self.rng.gauss(0, 2))
        state: dict[str, Any] = {
            "Time": self._time(), "Uptime": _uptime(up), "UptimeSec": int(up), "Heap": 25,
            "SleepMode": "Dynamic", "Sleep": 50, "LoadAvg": 19, "MqttCount": 1,
        }
        for i, m in enumerate(self.meters):
            state[self._power_name(i)] = "ON" if m.on else "OFF"
        state["Wifi"] = {"AP": 1, "SSId": "VillageHall", "BSSId": "30:B5:C2:4E:1A:90",
                         "Channel": 6, "Mode": "11n", "RSSI": max(0, min(100, 2 * (signal + 100))),
                         "Signal": signal, "LinkCount": 1, "Downtime": "0T00:00:04"}
        return state

    def sensor(self) -> dict[str, Any]:
        total = self.total_wh
        period = total - self.period_start_wh
        self.period_start_wh = total
        ms = self.meters

        def per(values: list[float], digits: int) -> Any:
            rounded = [round(v, digits) if digits else round(v) for v in values]
            return rounded[0] if len(rounded) == 1 else rounded

        energy = {
            "TotalStartTime": self.total_start,
            "Total": round(total / 1000, 3),
            "Yesterday": round(self.yesterday_wh / 1000, 3),
            "Today": round((total - self.today_start_wh) / 1000, 3),
            "Period": per([period / len(ms)] * len(ms), 0),
            "Power": per([m.watts for m in ms], 0),
            "ApparentPower": per([m.apparent for m in ms], 0),
            "ReactivePower": per([m.reactive for m in ms], 0),
            "Factor": per([m.pf for m in ms], 2),
            "Voltage": round(ms[0].voltage),
            "Current": per([m.current for m in ms], 3),
        }
        if len(ms) > 1:
            energy["Frequency"] = 50
        return {"Time": self._time(), "ENERGY": energy}

    # -- scenario actions ----------------------------------------------------------------------

    def _channels(self, args: Mapping[str, Any]) -> list[int]:
        ch = args.get("channel")
        if ch is None:
            return list(range(len(self.meters)))
        n = int(ch)
        if not 1 <= n <= len(self.meters):
            raise ScenarioError(f"device {self.id!r} has channels 1 to {len(self.meters)}, "
                                f"not {ch!r}")
        return [n - 1]

    def _switch(self, args: Mapping[str, Any], on: bool) -> None:
        for i in self._channels(args):
            if self.meters[i].switch(on, self.sim.now, self.env):
                for msg in self._switched(i, on):
                    self.publish(msg.topic, msg.payload)

    def do_on(self, args: Mapping[str, Any]) -> None:
        self._switch(args, True)

    def do_off(self, args: Mapping[str, Any]) -> None:
        self._switch(args, False)

    def do_restart(self, args: Mapping[str, Any]) -> None:
        """A power cycle: off the network for the boot time, uptime starts again."""
        self.booted_at = self.sim.now
        self.boot_count += 1
        self.booted = True
        self.do_wifi_drop({"for": args.get("for", 8)})

    def describe(self) -> str:
        return " ".join(f"{'on' if m.on else 'off'} {m.watts:.0f} W" for m in self.meters)
