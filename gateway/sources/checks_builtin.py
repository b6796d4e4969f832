"""The checks that come with the gateway: the Pi itself, the network, a random value."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from pathlib import Path

from gateway.sources.check import Check

THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


class SystemCheck(Check):
    """The host: CPU temperature (sysfs), throttling (vcgencmd, on a Pi), load, memory,
    the store's free disk, uptime. What this machine does not have is left out."""

    def check(self) -> None:
        if THERMAL.exists():
            self.gauge("system.cpu_temperature", int(THERMAL.read_text()) / 1000, "°C")
        throttled = _vcgencmd_throttled()
        if throttled is not None:
            # Bits of `vcgencmd get_throttled`: 0 under-voltage now, 2 throttled now,
            # 16 under-voltage has occurred, 18 throttling has occurred.
            self.gauge("system.under_voltage", float(bool(throttled & 0x1)))
            self.gauge("system.throttled", float(bool(throttled & 0x4)))
            self.gauge("system.under_voltage_occurred", float(bool(throttled & 0x10000)))
        one, five, fifteen = os.getloadavg()
        for span, value in (("1", one), ("5", five), ("15", fifteen)):
            self.gauge(f"system.load_{span}", value)
        meminfo = _meminfo()
        if "MemTotal" in meminfo and "MemAvailable" in meminfo:
            self.gauge("system.memory_available", meminfo["MemAvailable"], "B")
            self.gauge("system.memory_used_percent",
                       100 * (1 - meminfo["MemAvailable"] / meminfo["MemTotal"]), "%")
        disk = shutil.disk_usage(self.options.get("data_dir") or ".")
        self.gauge("system.disk_free", disk.free, "B")
        self.gauge("system.disk_used_percent", 100 * (1 - disk.free / disk.total), "%")
        uptime = Path("/proc/uptime")
        if uptime.exists():
            self.gauge("system.uptime", float(uptime.read_text().split()[0]), "s")


def _vcgencmd_throttled() -> int | None:
    if shutil.which("vcgencmd") is None:
        return None
    try:
        out = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True,
                             timeout=5, check=False).stdout  # throttled=0x50000
        return int(out.strip().split("=", 1)[1], 16)
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def _meminfo() -> dict[str, float]:
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                out[key] = float(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    except OSError:
        pass
    return out


class NetworkCheck(Check):
    """Whether each target (host:port; default: the sinks' hosts) accepts a connection,
    and how long that took; and which interface the default route leaves by."""

    def check(self) -> None:
        for target in self.options.get("targets") or ():
            host, _, port = str(target).rpartition(":")
            began = self.clock.monotonic()
            try:
                with socket.create_connection((host, int(port)), timeout=5):
                    pass
                self.gauge("network.reachable", 1, tags={"target": str(target)})
                took = (self.clock.monotonic() - began) * 1000
                self.gauge("network.connect_time", took, "ms", tags={"target": str(target)})
            except (OSError, ValueError):
                self.gauge("network.reachable", 0, tags={"target": str(target)})
        interface = _default_route()
        self.gauge("network.default_route", 1.0 if interface else 0.0,
                   tags={"interface": interface} if interface else None)


def _default_route() -> str:
    try:
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 2 and fields[1] == "00000000":
                return fields[0]
    except OSError:
        pass
    return ""


class RandomCheck(Check):
    """A value between 0 and 1000 each run (Datadog's my_metric example): something to
    try dashboards and monitors with."""

    def check(self) -> None:
        self.gauge("random.value", random.uniform(0, 1000))


BUILT_IN: dict[str, type[Check]] = {"system": SystemCheck, "network": NetworkCheck,
                                    "random": RandomCheck}
