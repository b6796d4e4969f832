"""What devices say about themselves: units and value lists learned from the messages
that describe them, for values no profile names.

Zigbee2MQTT publishes every device's `exposes` (property names, units, enum values)
retained on `<base_topic>/bridge/devices`. A device the profile does not know
still reports its unknown keys as `zigbee.<key>`; once the bridge has described
it, those readings get the unit the bridge gives, and an enum's words become
their position in its value list (a radiator valve's `"high"` of `[low, medium,
high]` is 2). A profile's own fields always win: a contradiction is logged once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Learned:
    unit: str = ""
    values: tuple[str, ...] = ()  # an enum's words, in the order that numbers them


def _features(expose: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield expose
    for sub in expose.get("features") or ():
        if isinstance(sub, Mapping):
            yield from _features(sub)


def zigbee2mqtt_exposes(body: Any, friendly_name: str) -> dict[str, Learned] | None:
    """What bridge/devices says of one device's properties; None when it does not list
    the device (or the payload is not a device list)."""
    if not isinstance(body, list):
        return None
    for device in body:
        if not isinstance(device, Mapping) or device.get("friendly_name") != friendly_name:
            continue
        definition = device.get("definition")
        exposes = definition.get("exposes") if isinstance(definition, Mapping) else None
        out: dict[str, Learned] = {}
        for expose in exposes if isinstance(exposes, list) else ():
            if not isinstance(expose, Mapping):
                continue
            for f in _features(expose):
                prop = f.get("property")
                if not isinstance(prop, str) or not prop:
                    continue
                unit = f.get("unit") if isinstance(f.get("unit"), str) else ""
                values = f.get("values") if f.get("type") == "enum" else None
                words = tuple(str(v) for v in values) if isinstance(values, list) else ()
                out[prop] = Learned(unit, words)
        return out
    return None


LEARNERS = {"zigbee2mqtt-exposes": zigbee2mqtt_exposes}
