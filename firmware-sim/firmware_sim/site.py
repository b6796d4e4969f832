"""A site file: the place being simulated (its world) and the devices in it.

    site: village-hall
    description: ...
    timezone: Europe/London
    world: {kind: hall, outside_mean: 6}
    gateway: {name: kilnwick-hall, tags: {site: kilnwick}}
    heating: {device: heating, preheat: 1h}     # optional: who bookings warm up
    devices:
      - {id: defib-socket, kind: tasmota, topic: defib_socket, priority: critical, ...}

Each device's `kind` names a simulated firmware (firmware_sim.devices.KINDS);
its other keys are that firmware's settings. `gateway_config()` gives the
gateway the matching `devices:` entries, so simulator and gateway never
disagree about topics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_sim.devices import WORLDS, device_class, load_class
from firmware_sim.devices.base import ScenarioError, SimDevice
from firmware_sim.engine import Simulation
from firmware_sim.world import World
from firmware_sim.yamlfile import read_yaml

SITES_DIR = Path(__file__).parent / "sites"


@dataclass(frozen=True)
class Site:
    name: str
    description: str
    timezone: str
    world: Mapping[str, Any]
    gateway: Mapping[str, Any]
    devices: tuple[Mapping[str, Any], ...]
    heating: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None


def load_site(name_or_path: str) -> Site:
    """A site by name (firmware_sim/sites/<name>.yaml) or by file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SITES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SITES_DIR.glob("*.yaml")))
        raise ScenarioError(f"no site {name_or_path!r} (known: {known})")
    data = read_yaml(path, "site")
    unknown = set(data) - {"site", "description", "timezone", "world", "gateway", "devices",
                           "heating"}
    if unknown:
        raise ScenarioError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    devices = data.get("devices") or []
    ids = [d.get("id") for d in devices if isinstance(d, dict)]
    if len(ids) != len(devices) or not all(ids):
        raise ScenarioError(f"{path}: every device needs an id and a kind")
    return Site(str(data.get("site", path.stem)), str(data.get("description", "")),
                str(data.get("timezone", "UTC")), dict(data.get("world") or {"kind": "hall"}),
                dict(data.get("gateway") or {"name": path.stem}), tuple(devices),
                dict(data.get("heating") or {}), path)


@dataclass
class Built:
    """A site's world and devices, made for one simulation."""

    world: World
    devices: list[SimDevice]
    targets: dict[str, Any]  # every id a scenario step may name -> object with perform()

    def gateway_devices(self) -> list[dict[str, Any]]:
        return [entry for d in self.devices for entry in d.gateway_devices()]

    def gateway_sources(self) -> list[dict[str, Any]]:
        return [entry for d in self.devices for entry in d.gateway_sources()]


def build(site: Site, sim: Simulation, overrides: Mapping[str, Mapping[str, Any]] | None = None
          ) -> Built:
    """Make the world and devices. `overrides` changes device settings by id (from a scenario)."""
    overrides = overrides or {}
    unknown = set(overrides) - {str(d["id"]) for d in site.devices}
    if unknown:
        raise ScenarioError(f"the scenario changes device(s) the site does not have: "
                            f"{', '.join(sorted(unknown))}")
    world_spec = dict(site.world)
    world_cls = load_class(WORLDS, str(world_spec.pop("kind", "hall")), "world kind")
    world: World = world_cls(sim, world_spec)
    devices: list[SimDevice] = []
    targets: dict[str, Any] = {}
    for spec in site.devices:
        merged = {**spec, **overrides.get(str(spec["id"]), {})}
        device = device_class(str(merged.get("kind", "")))(sim, merged, world)
        devices.append(device)
        for name, target in {device.id: device, **device.children()}.items():
            if name in targets:
                raise ScenarioError(f"{site.path}: device id {name!r} is used twice")
            targets[name] = target
    return Built(world, devices, targets)


def gateway_devices(site: Site, overrides: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> list[dict[str, Any]]:
    """The gateway `devices:` entries that read a site (with a scenario's `overrides`)."""
    return build(site, Simulation(0, timezone=site.timezone), overrides).gateway_devices()


def gateway_sources(site: Site, overrides: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> list[dict[str, Any]]:
    """The gateway `sources:` entries a site's serial devices need (their `link` paths)."""
    return build(site, Simulation(0, timezone=site.timezone), overrides).gateway_sources()


def gateway_config(site: Site, devices: list[dict[str, Any]],
                   sources: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The gateway config (as a dict for YAML) that reads this site's devices."""
    gw = dict(site.gateway)
    gw.setdefault("timezone", site.timezone)
    config: dict[str, Any] = {"gateway": gw}
    if sources:
        config["sources"] = sources
    config["devices"] = devices
    return config
