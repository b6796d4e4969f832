"""The shape of a device profile file (devices/*.yaml) and of a shared fragment.

A profile says which topics a device family publishes and how each payload
becomes readings. It is data: adding a device family is adding a file.

    profile: tasmota
    description: Tasmota firmware: plugs, relays, energy monitors
    params: {topic: {description: "the device's Tasmota Topic"}}
    include: [plug, availability]        # fragments from devices/fragments/
    messages:
      - topic: tele/{topic}/SENSOR       # {param} is the device's parameter;
        payload: json                    # any other {name} captures one level
        fields:
          - {path: ENERGY.Power, quantity: power}
    examples:
      - params: {topic: plug1}
        topic: tele/plug1/SENSOR
        payload: {ENERGY: {Power: 45}}
        readings: [{metric: plug.power, value: 45, unit: W}]

A message rule's `time:` says where its payload gives the time its values
were measured (gateway/profiles/devicetime.py reads it); `retained:` says what
a retained message delivered on subscribing is (the last known state, by default).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from gateway.config.validate import doc


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})

MetricTypeName = Literal["gauge", "count", "rate"]
RollupName = Literal["mean", "last", "sum", "changes"]
_ROLLUP_DOC = ("how old readings may be folded when the store must shrink: mean (a level), "
               "last (a running total), sum (a count), changes (a state: only repeats of "
               "one value are folded); default: sum for counts, changes for mapped values, "
               "otherwise mean")


@dataclass(frozen=True)
class Quantity:
    """A named kind of measurement, shared so profiles name metrics alike."""

    metric: str = field(metadata=doc("metric name, dotted lower case"))
    unit: str = field(default="", metadata=doc("unit symbol, e.g. W, kWh, °C"))
    type: MetricTypeName = field(default="gauge", metadata=doc("gauge|count|rate"))
    rollup: RollupName | None = field(default=None, metadata=doc(_ROLLUP_DOC))


@dataclass(frozen=True)
class FieldSpec:
    """How one value in a payload becomes a reading."""

    path: str = field(default="", metadata=doc("dotted path into the JSON payload (a number "
                                                "indexes an array: sensors.0.temp); '*' = every "
                                                "other top-level number; '' = the whole payload"))
    metric: str = field(default="", metadata=doc("metric name; may use {capture}, {key} "
                                                  "and a device {param}"))
    quantity: str = field(default="", metadata=doc("a named quantity (metric, unit, type)"))
    unit: str | None = field(default=None, metadata=doc("unit, overrides the quantity's"))
    type: MetricTypeName | None = field(default=None, metadata=doc("gauge|count|rate"))
    scale: float = field(default=1.0, metadata=doc("multiply the value by this"))
    offset: float = field(default=0.0, metadata=doc(
        "add this after scaling (OBD-II's coolant temperature is A - 40)"))
    map: str | Mapping[str, float] | None = field(
        default=None, metadata=doc("value map name, or inline {text: number}")
    )
    rollup: RollupName | None = field(default=None, metadata=doc(_ROLLUP_DOC))
    array_tag: str = field(default="channel", metadata=doc("tag for elements of an array value"))
    also_numbers: bool = field(default=False, metadata=doc(
        "with a map: a number, or text that reads as one, is taken as itself rather than "
        "refused (Home Assistant states: on/off, or 21.5)"))
    use: str = field(default="", metadata=doc("include a named field group instead"))
    exclude: tuple[str, ...] = field(default=(), metadata=doc("with path '*': keys to skip"))
    nested: bool = field(
        default=False,
        metadata=doc("with path '*': also the numbers in nested objects ({key} is then "
                     "their dotted path, e.g. env.temp) and in arrays (one per element, "
                     "tagged `array_tag` 1, 2 ...)"))
    tags: Mapping[str, str] = field(
        default_factory=_empty,
        metadata=doc("tags its readings carry, e.g. {phase: a} for one phase of a meter; "
                     "a value may use {capture}s, e.g. {entity_id: \"{domain}.{entity}\"}"))
    units: Mapping[str, str] = field(
        default_factory=_empty,
        metadata=doc("with path '*': the unit of each key, e.g. {Temperature: °C}; others "
                     "get `unit` (none by default)"))

    def check(self) -> Iterator[tuple[str, str]]:
        if self.use:
            if self.path or self.metric or self.quantity:
                yield "use", "a field group include takes no path, metric or quantity"
            return
        if not self.metric and not self.quantity:
            yield "metric", "give a metric or a quantity"
        if self.scale == 0:
            yield "scale", "must not be 0"


@dataclass(frozen=True)
class Availability:
    """Online/offline payloads (LWT); they become a `device.online` reading."""

    online: tuple[str, ...] = field(metadata=doc("payload texts meaning online"))
    offline: tuple[str, ...] = field(metadata=doc("payload texts meaning offline"))
    path: str = field(default="", metadata=doc("for JSON payloads, where the word is"))


@dataclass(frozen=True)
class When:
    """A condition on the payload; messages failing it are known but ignored."""

    path: str = field(metadata=doc("dotted path into the JSON payload"))
    equals: str | tuple[str, ...] = field(
        metadata=doc("the value it must have, or a list of values it may have")
    )

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.path.split("."))

    def holds(self, value: Any) -> bool:
        """Whether a payload whose value at `path` is `value` meets the condition."""
        if isinstance(value, (dict, list)):
            # Only a word or number can equal one; str() of an array nested a
            # thousand deep would also recurse a thousand deep.
            return False
        allowed = (self.equals,) if isinstance(self.equals, str) else self.equals
        return str(value) in allowed


@dataclass(frozen=True)
class Each:
    """Decode every entry of an object whose key matches a pattern (e.g. switch:{channel})."""

    path: str = field(metadata=doc("dotted path of the object to walk ('' = payload)"))
    key: str = field(metadata=doc("key pattern; {name} captures a tag"))
    exclude: tuple[str, ...] = field(default=(), metadata=doc("keys not walked"))
    family: str = field(
        default="", metadata=doc("a capture whose text, lower-cased and without a trailing "
                                 "-N instance number, is also {family} (DS18B20-1 -> ds18b20)"))


@dataclass(frozen=True)
class MessageRule:
    """One kind of message a device publishes."""

    topic: str = field(metadata=doc("topic pattern: {param}, {capture}, + and #; for a "
                                     "source other than mqtt, its origin (see `source`)"))
    source: Literal["mqtt", "serial", "obd", "gpio", "check"] = field(default="mqtt", metadata=doc(
        "the kind of source its messages come from: mqtt (topic: an MQTT topic), serial "
        "(topic: the serial source's name; one message a line), obd (topic: "
        "<source>/<ecu>/<mode><pid>, an ELM327 source's answers), gpio (topic: "
        "<source>/<input>/<kind>, a pin's change) or check (topic: a local check's name)"))
    payload: Literal["json", "text", "auto", "nmea", "csv", "readings"] = field(
        default="json", metadata=doc(
            "json | text (one value) | auto (JSON object or text) | nmea (an NMEA 0183 "
            "sentence, read with pynmea2: its fields by name, `type` RMC/GGA...) | csv "
            "(comma-separated values, by column number) | readings (a JSON list of "
            "{metric, value, unit, type, tags}, as a local check makes them: no fields)"))
    fields: tuple[FieldSpec, ...] = field(default=(), metadata=doc("values to read"))
    fields_param: str = field(
        default="", metadata=doc("take the field map from this device parameter")
    )
    availability: Availability | None = field(default=None, metadata=doc("LWT payloads"))
    when: When | None = field(default=None, metadata=doc("condition; else ignored"))
    each: Each | None = field(default=None, metadata=doc("walk entries of an object"))
    name: str = field(default="", metadata=doc("a short name for logs"))
    ignore: bool = field(default=False, metadata=doc("known topic, nothing to read"))
    partial: bool = field(default=False, metadata=doc(
        "payloads are change notifications holding only some fields (or none of this "
        "rule's): one that gives no reading is ignored, not a problem"))
    time: str = field(default="", metadata=doc(
        "dotted path to when the device measured the payload's values: ISO 8601 text (no "
        "offset: the device's time zone) or epoch seconds/milliseconds; may use a {param}; "
        "'' or absent in a payload: the receive time"))
    retained: Literal["state", "reading"] = field(default="state", metadata=doc(
        "what a retained message the broker hands over on subscribing is: state (the last "
        "known value, shown but not stored) or reading (stored like any other, for devices "
        "that publish every reading retained)"))

    skip: tuple[str, ...] = field(default=(), metadata=doc(
        "payload texts that mean there is no value now (Home Assistant's unavailable, "
        "unknown): such a message is known and ignored, not a problem"))
    units_from: Mapping[str, str] = field(default_factory=_empty, metadata=doc(
        "payload keys saying which unit the message's values are in, by the unit the "
        "profile reads them in, e.g. {°C: TempUnit, hPa: PressureUnit}: °F and K become "
        "°C, mmHg and inHg hPa; a unit word it does not know drops those values, counted"))
    learn: Literal["", "zigbee2mqtt-exposes", "ha-discovery",
                   "ha-statestream-unit"] = field(default="", metadata=doc(
        "the message describes devices (units, enum values) rather than measuring: "
        "zigbee2mqtt-exposes reads Zigbee2MQTT's bridge/devices for this device, "
        "ha-discovery a Home Assistant discovery config ({component}, {object} captures), "
        "ha-statestream-unit an entity's unit_of_measurement attribute from "
        "mqtt_statestream ({domain}, {entity} captures)"))

    def check(self) -> Iterator[tuple[str, str]]:
        if not (self.fields or self.fields_param or self.availability or self.ignore
                or self.learn or self.payload == "readings"):
            yield "", ("a message needs fields, fields_param, availability, learn or "
                       "ignore: true")


@dataclass(frozen=True)
class ParamSpec:
    description: str = field(default="", metadata=doc("what the parameter is"))
    required: bool = field(default=True, metadata=doc("must every device give it"))
    default: Any = field(default=None, metadata=doc("value when not given"))


@dataclass(frozen=True)
class Example:
    """A documented payload and the readings it must give (run by the tests)."""

    topic: str = field(metadata=doc("topic it arrives on (its origin, for other sources)"))
    payload: Any = field(metadata=doc("payload: text, or YAML/JSON data"))
    source: Literal["mqtt", "serial", "obd", "gpio", "check"] = field(default="mqtt", metadata=doc(
        "the kind of source it comes from"))
    readings: tuple[Mapping[str, Any], ...] = field(
        default=(), metadata=doc("expected readings: metric, value, optional unit/type/tags")
    )
    params: Mapping[str, Any] = field(default_factory=_empty, metadata=doc("device parameters"))
    ignored: bool = field(default=False, metadata=doc("the message is known and ignored"))
    note: str = field(default="", metadata=doc("where the payload comes from"))
    received: str | float | None = field(default=None, metadata=doc(
        "when the gateway receives it (ISO 8601 with an offset, or epoch seconds); readings "
        "may then give the `ts` they must get"))
    timezone: str = field(default="", metadata=doc("the device's time zone (default UTC)"))


@dataclass(frozen=True)
class Fragment:
    """Shared, parameter-free pieces profiles include by name."""

    fragment: str = field(metadata=doc("fragment name (file name without .yaml)"))
    description: str = field(default="", metadata=doc("what it holds"))
    quantities: Mapping[str, Quantity] = field(default_factory=_empty,
                                               metadata=doc("named quantities"))
    maps: Mapping[str, Mapping[str, float]] = field(default_factory=_empty,
                                                    metadata=doc("value maps"))
    field_groups: Mapping[str, tuple[FieldSpec, ...]] = field(
        default_factory=_empty, metadata=doc("named lists of fields")
    )


@dataclass(frozen=True)
class ProfileSpec(Fragment):
    """A device family. A profile is a fragment plus params, messages and examples."""

    fragment: str = ""
    profile: str = field(default="", metadata=doc("profile name, as devices name it"))
    params: Mapping[str, ParamSpec] = field(default_factory=_empty,
                                            metadata=doc("device parameters"))
    include: tuple[str, ...] = field(default=(), metadata=doc("fragments to include"))
    messages: tuple[MessageRule, ...] = field(default=(), metadata=doc("messages it publishes"))
    examples: tuple[Example, ...] = field(default=(), metadata=doc("payloads and readings"))

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.profile:
            yield "profile", "is required (the profile's name)"
        if not self.messages:
            yield "messages", "a profile needs at least one message"
