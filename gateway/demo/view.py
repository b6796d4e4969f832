"""The demo's live view: one screen of text built from the gateway's status.

Each device gets a line with its online state, how long since it was heard,
and its main values; then ingest rates and each sink's backlog. Pure text, so
it can be redrawn in a terminal or printed frame after frame into a log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.cli.text import age

# (metric, short name, how to print) in the order a person scans a device line.
SHOWN: tuple[tuple[str, str, str], ...] = (
    ("plug.switch", "switch", "onoff"),
    ("plug.power", "power", "W"),
    ("plug.energy_total", "energy", "kWh"),
    ("climate.temperature", "temp", "°C"),
    ("climate.setpoint", "set", "°C"),
    ("switch.boiler_relay", "boiler", "onoff"),
    ("light.state", "light", "onoff"),
    ("light.brightness", "bright", "%"),
    ("device.internal_temperature", "internal", "°C"),
    ("meter.electricity.power", "power", "kW"),
    ("meter.electricity.import_total", "import", "kWh"),
    ("meter.gas.power", "gas", "kW"),
)
_LABEL = re.compile(r"^([^{]+)(?:\{(.*)\})?$")


def _number(value: float, unit: str) -> str:
    if unit == "onoff":
        return "on" if value else "off"
    if unit == "kWh":
        return f"{value:.2f}"
    if abs(value) >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.1f}"


def device_summary(values: Mapping[str, Sequence[Any]]) -> str:
    """'switch on · power 38 W · energy 512.42 kWh' from a device's latest values."""
    by_metric: dict[str, list[float]] = {}
    for label, (value, _unit) in sorted(values.items()):
        m = _LABEL.match(label)
        if m:
            by_metric.setdefault(m.group(1), []).append(float(value))
    parts = []
    for metric, name, unit in SHOWN:
        found = by_metric.get(metric)
        if not found:
            continue
        text = "/".join(_number(v, unit) for v in found)
        suffix = "" if unit in ("onoff", "%") else f" {unit}"
        parts.append(f"{name} {text}{suffix}" if unit != "%" else f"{name} {text}%")
    return " · ".join(parts) if parts else f"{len(values)} series"


def render(status: Mapping[str, Any], now: float, header: Sequence[str],
           rates: Mapping[str, float], footer: Sequence[str] = ()) -> str:
    """One frame of the live view."""
    lines = list(header)
    lines.append("")
    devices = status.get("devices") or {}
    width = max([len("DEVICE"), *(len(d) for d in devices)])
    lines.append(f"{'DEVICE':<{width}}  {'STATE':<7}  {'HEARD':>5}  LATEST")
    for name, dev in devices.items():
        online = dev.get("online")
        state = "online" if online else ("OFFLINE" if online is False else "?")
        seen = dev.get("last_seen")
        heard = age(None if seen is None else now - seen, "never")
        lines.append(f"{name:<{width}}  {state:<7}  {heard:>5}"
                     f"  {device_summary(dev.get('values') or {})}")
    lines.append("")
    ing = status.get("ingest") or {}
    bad = sum((ing.get("undecodable") or {}).values())
    mqtt = status.get("mqtt") or {}
    lines.append(f"ingest: {rates.get('messages', 0):.1f} msg/s, "
                 f"{rates.get('readings', 0):.0f} readings/s; stored {ing.get('stored', 0):.0f}, "
                 f"undecodable {bad:.0f}; broker "
                 + ("connected" if mqtt.get("connected") else "NOT CONNECTED"))
    for sink in status.get("sinks") or []:
        backlog = sink.get("backlog_rows")
        line = (f"sink {sink['name']} [{sink.get('state', '?')}]: backlog "
                f"{'?' if backlog is None else backlog} rows, delivered "
                f"{sink.get('delivered', 0):.0f}")
        if sink.get("last_error"):
            line += ("; " if sink.get("state") == "waiting" else "; last error: ") + \
                sink["last_error"]
        lines.append(line)
    lines.extend(footer)
    return "\n".join(lines)
