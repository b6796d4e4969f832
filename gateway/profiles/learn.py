"""What devices say about themselves: units and value lists learned from the messages
that describe them, for values no profile names.

Home Assistant discovery configs (ESPHome's `homeassistant/<component>/<node>/
<object_id>/config`, retained) give each entity's `unit_of_measurement`, so
`sensor.<object_id>` readings, whose state topics carry no unit, get one. ESPHome
sends them with Home Assistant's abbreviated keys (`unit_of_meas`, `dev_cla`) unless
its `use_abbreviations` is turned off: both spellings are read.

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
    device_class: str = ""  # Home Assistant's name for what it measures ("temperature")
    source: str = ""  # the topic that said so, for `gateway decode` and the log


def _text(body: Mapping[str, Any], *keys: str) -> str:
    """The first of `keys` that `body` has as text: a discovery key in its full or its
    abbreviated spelling."""
    for key in keys:
        value = body.get(key)
        if isinstance(value, str):
            return value
    return ""


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


def ha_discovery(body: Any, captures: Mapping[str, str]) -> dict[str, Learned] | None:
    """One entity's discovery config: its metric (`<component>.<object_id>`, as the
    esphome profile names it) and unit."""
    component, obj = captures.get("component"), captures.get("object")
    if not isinstance(body, Mapping) or not component or not obj:
        return None
    options = body.get("options", body.get("ops"))
    words = tuple(str(v) for v in options) if isinstance(options, list) else ()
    return {f"{component}.{obj}": Learned(_text(body, "unit_of_measurement", "unit_of_meas"),
                                          words, _text(body, "device_class", "dev_cla"))}


def _zigbee(body: Any, params: Mapping[str, Any], captures: Mapping[str, str]
            ) -> dict[str, Learned] | None:
    return zigbee2mqtt_exposes(body, str(params.get("friendly_name", "")))


def _discovery(body: Any, params: Mapping[str, Any], captures: Mapping[str, str]
               ) -> dict[str, Learned] | None:
    return ha_discovery(body, captures)


def _statestream_unit(body: Any, params: Mapping[str, Any], captures: Mapping[str, str]
                      ) -> dict[str, Learned] | None:
    """mqtt_statestream's unit_of_measurement attribute (JSON text, "°C") of the entity
    whose state the ha-statestream profile reads as `<domain>.<entity>`."""
    domain, entity = captures.get("domain"), captures.get("entity")
    if not isinstance(body, str) or not domain or not entity:
        return None
    return {f"{domain}.{entity}": Learned(body)}


#: learner name (a message rule's `learn:`) -> what it makes of a describing message
LEARNERS = {"zigbee2mqtt-exposes": _zigbee, "ha-discovery": _discovery,
            "ha-statestream-unit": _statestream_unit}


def learned_to_json(learned: Mapping[str, Mapping[str, Learned]]) -> dict[str, Any]:
    """What devices said of themselves, as JSON data (kept across restarts)."""
    return {device: {key: {"unit": v.unit, "values": list(v.values),
                           "device_class": v.device_class, "source": v.source}
                     for key, v in said.items()}
            for device, said in learned.items()}


def learned_from_json(data: Any) -> dict[str, dict[str, Learned]]:
    """The opposite of learned_to_json; what does not read as one is left out."""
    out: dict[str, dict[str, Learned]] = {}
    for device, said in (data.items() if isinstance(data, dict) else ()):
        for key, v in (said.items() if isinstance(said, dict) else ()):
            if isinstance(v, dict):
                out.setdefault(str(device), {})[str(key)] = Learned(
                    str(v.get("unit") or ""), tuple(str(w) for w in v.get("values") or ()),
                    str(v.get("device_class") or ""), str(v.get("source") or ""))
    return out
