"""Scenario files: what happens at a site, when.

    scenario: ordinary-week
    description: ...
    site: village-hall
    duration: 7d
    devices: {stage-bulb: {version: 1}}   # optional: change a device's settings
    bookings:                             # recurring use of the hall
      - {name: Toddler group, rrule: "FREQ=WEEKLY;BYDAY=MO,WE,FR", at: "09:30",
         for: 2h, people: 25, uses: [stage-lights, kitchen-urn]}
    events:                               # one-off steps, `at` from the start
      - {at: 26h, device: kitchen-urn, do: wifi-drop, for: 20m}
      - {at: 3d, do: broker-restart, for: 45s}

Durations are seconds, or "90s", "15m", "2h", "1d2h30m". A booking warms the
hall (the site's heating device gets `comfort` `preheat` before the start and
`setback` at the end), fills it with people and switches on what it `uses`
(a device id, or id:channel) for its length. Bookings repeat by RFC 5545 RRULE
(python-dateutil), in the site's time zone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dateutil.rrule import rrulestr

from firmware_sim.devices.base import ScenarioError
from firmware_sim.site import Site, load_site
from firmware_sim.yamlfile import read_yaml

SCENARIOS_DIR = Path(__file__).parent / "scenarios"

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?"
                       r"(?:(\d+(?:\.\d+)?)s)?$")

# Steps a scenario gives the run itself rather than a device or the world.
RUN_ACTIONS = ("broker-restart", "uplink-down")


def parse_duration(value: Any, where: str) -> float:
    """Seconds from 90, "90s", "15m", "2h", "1d2h30m"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).replace(" ", "")
    m = _DURATION.match(text)
    if not text or m is None or not any(m.groups()):
        raise ScenarioError(f"{where}: {value!r} is not a duration (e.g. 90s, 15m, 2h, 1d2h)")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def format_duration(seconds: float) -> str:
    """90 -> "1m30s", 9000 -> "2h30m": the form scenario files use."""
    s = round(seconds)
    parts = [(s // 86400, "d"), (s % 86400 // 3600, "h"), (s % 3600 // 60, "m"), (s % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


@dataclass(frozen=True)
class Booking:
    name: str
    rrule: str
    at: str  # local HH:MM
    length: float
    people: int
    uses: tuple[str, ...]


@dataclass(frozen=True)
class Event:
    at: float
    action: str
    device: str | None
    args: Mapping[str, Any]
    where: str = ""  # file and index, for error messages


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    site: Site
    duration: float
    bookings: tuple[Booking, ...] = ()
    events: tuple[Event, ...] = ()
    devices: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    start: str | None = None  # local ISO date-time; the run's --start wins
    path: Path | None = None


def _booking(data: Any, where: str) -> Booking:
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: a booking is a mapping")
    unknown = set(data) - {"name", "rrule", "at", "for", "people", "uses"}
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    at = str(data.get("at", ""))
    m = re.match(r"^(\d{1,2}):(\d{2})$", at)
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ScenarioError(f"{where}.at: {at!r} is not a local time HH:MM (00:00 to 23:59)")
    if "rrule" not in data:
        raise ScenarioError(f"{where}: a booking needs an rrule, e.g. FREQ=WEEKLY;BYDAY=MO")
    try:
        rrulestr(str(data["rrule"]), dtstart=datetime(2026, 1, 1))
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"{where}.rrule: {data['rrule']!r} is not an RFC 5545 RRULE "
                            f"({exc})") from None
    return Booking(str(data.get("name", "booking")), str(data["rrule"]), at,
                   parse_duration(data.get("for", "2h"), f"{where}.for"),
                   int(data.get("people", 20)), tuple(str(u) for u in data.get("uses", [])))


def _event(data: Any, where: str) -> Event:
    if not isinstance(data, dict) or "do" not in data or "at" not in data:
        raise ScenarioError(f"{where}: an event needs `at` and `do`")
    args = {k: v for k, v in data.items() if k not in ("at", "do", "device")}
    for key in ("for", "every"):
        if key in args:
            args[key] = parse_duration(args[key], f"{where}.{key}")
    device = data.get("device")
    action = data["do"]
    if isinstance(action, bool):  # YAML reads a bare on/off as true/false
        action = "on" if action else "off"
    return Event(parse_duration(data["at"], f"{where}.at"), str(action),
                 str(device) if device is not None else None, args, where)


def load_scenario(name_or_path: str) -> Scenario:
    """A scenario by name (firmware_sim/scenarios/<name>.yaml) or by file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIOS_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(s for s in scenario_names())
        raise ScenarioError(f"no scenario {name_or_path!r} (known: {known})")
    data = read_yaml(path, "scenario")
    unknown = set(data) - {"scenario", "description", "site", "duration", "bookings", "events",
                           "devices", "start"}
    if unknown:
        raise ScenarioError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    site_ref = str(data.get("site", "village-hall"))
    if site_ref.endswith(".yaml") and not Path(site_ref).is_absolute():
        site_ref = str(path.parent / site_ref)
    return Scenario(
        name=str(data.get("scenario", path.stem)),
        description=" ".join(str(data.get("description", "")).split()),
        site=load_site(site_ref),
        duration=parse_duration(data.get("duration", "1d"), f"{path}: duration"),
        bookings=tuple(_booking(b, f"{path}: bookings[{i}]")
                       for i, b in enumerate(data.get("bookings") or [])),
        events=tuple(_event(e, f"{path}: events[{i}]")
                     for i, e in enumerate(data.get("events") or [])),
        devices=dict(data.get("devices") or {}),
        start=str(data["start"]) if data.get("start") else None,
        path=path,
    )


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.yaml"))
