"""An ELM327 OBD-II adapter's settings (`sources[]` entry with `type: elm327`)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from gateway.config.validate import Duration, doc
from gateway.sources.port_config import PortSourceConfig

#: mode 01 PIDs by the names a config may use (SAE J1979); two hex digits work too
PID_NAMES = {
    "engine_load": 0x04, "coolant": 0x05, "rpm": 0x0C, "speed": 0x0D, "intake": 0x0F,
    "throttle": 0x11, "run_time": 0x1F, "fuel_level": 0x2F, "distance_since_clear": 0x31,
    "barometric_pressure": 0x33, "module_voltage": 0x42, "ambient": 0x46,
}

DEFAULT_PIDS = MappingProxyType({
    "rpm": Duration(1.0), "speed": Duration(1.0), "throttle": Duration(1.0),
    "engine_load": Duration(2.0), "coolant": Duration(10.0), "intake": Duration(10.0),
    "module_voltage": Duration(10.0), "fuel_level": Duration(60.0),
})

_HEX_PID = re.compile(r"^[0-9A-Fa-f]{2}$")
_PROTOCOL = re.compile(r"^A?[0-9A-Ca-c]$")


def pid_number(name: str) -> int | None:
    """A PID's number from its name or two hex digits; None when it is neither."""
    if name in PID_NAMES:
        return PID_NAMES[name]
    return int(name, 16) if _HEX_PID.match(name) else None


@dataclass(frozen=True)
class Elm327SourceConfig(PortSourceConfig):
    type: Literal["elm327"] = "elm327"
    port: str = field(default="", metadata=doc(
        "the adapter's port: /dev/ttyUSB0, /dev/rfcomm0 (Bluetooth), /dev/serial/by-id/..., "
        "or a pyserial URL (socket://192.168.0.10:35000 for a Wi-Fi adapter)"))
    baudrate: int = field(default=38400, metadata=doc(
        "the adapter's speed: 38400 for most USB and Bluetooth ELM327s, 9600 for the "
        "oldest, 115200 for some"))
    protocol: str = field(default="0", metadata=doc(
        "ATSP: 0 searches for the car's protocol; 6 is CAN 11-bit 500k (most cars since "
        "2008), 3 ISO 9141-2, 4/5 KWP2000; A6 tries 6 first, then searches"))
    pids: Mapping[str, Duration] = field(default_factory=lambda: DEFAULT_PIDS, metadata=doc(
        "mode 01 PIDs to poll and how often each, by name (rpm, speed, throttle, "
        "engine_load, coolant, intake, module_voltage, fuel_level, run_time, ambient, "
        "barometric_pressure, distance_since_clear) or two hex digits ('5C'); 0: as "
        "often as the car answers. Default: rpm, speed and throttle every second, load "
        "every 2 s, temperatures and voltage every 10 s, fuel every minute"))
    trouble_codes_every: Duration = field(default=Duration(60.0), metadata=doc(
        "how often to read the stored trouble codes (mode 03); 0: never"))
    battery_every: Duration = field(default=Duration(60.0), metadata=doc(
        "how often to read the battery voltage at the OBD socket (ATRV; it answers with "
        "the ignition off too); 0: never"))
    idle_every: Duration = field(default=Duration(10.0), metadata=doc(
        "while no ECU answers (ignition off), how often to look for it again"))
    answer_timeout: Duration = field(default=Duration(5.0), metadata=doc(
        "longest wait for the adapter's prompt after a request (a protocol search can "
        "take several seconds)"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from PortSourceConfig.check(self)
        if not _PROTOCOL.match(self.protocol):
            yield "protocol", "an ATSP value: 0 (search), 1 to C, or A and one of them"
        for name in self.pids:
            if pid_number(str(name)) is None:
                yield f"pids.{name}", (f"{name!r} is no PID name this adapter source "
                                       f"knows ({', '.join(PID_NAMES)}) nor two hex digits "
                                       "in quotes ('5C')")
        if not self.pids:
            yield "pids", "name at least one PID to poll, e.g. {rpm: 1s}"
        if self.answer_timeout <= 0 or self.idle_every <= 0:
            yield "answer_timeout", "answer_timeout and idle_every must be more than 0"
