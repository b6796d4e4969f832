"""Turn one raw MQTT message into readings, using the configured devices' profiles.

A payload the decoder cannot read is never an exception: the result carries
the reason (counted and logged by the caller), and whatever could be read.

Every reading it returns can be stored: a finite value, a metric name with no
empty part, tags that are non-empty valid text. Payloads are bounded in size
(`max_payload_bytes`), in what one may give (`max_readings`: readings plus
unreadable values) and, on every path, in nesting: nothing here recurses over
a payload's structure, and the lenient JSON parser refuses deep nesting
before it starts.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from gateway.config.schema import DeviceConfig
from gateway.config.validate import build
from gateway.model import Reading
from gateway.profiles.devicetime import DeviceClock, TimePolicy, zone
from gateway.profiles.learn import LEARNERS, Learned
from gateway.profiles.library import Profile, ProfileLibrary, field_map
from gateway.profiles.lines import Unreadable, csv_body, nmea_body
from gateway.profiles.schema import Availability, FieldSpec, MessageRule
from gateway.profiles.topics import PLACEHOLDER as _PLACEHOLDER
from gateway.profiles.topics import fill_params, minimal_filters, topic_pattern

log = logging.getLogger("gateway.decode")

# Reasons a message (or part of one) could not be read. Stable: they are metric tags.
UNKNOWN_TOPIC = "unknown_topic"
TOO_LARGE = "too_large"
NOT_UTF8 = "not_utf8"
BAD_JSON = "bad_json"
WRONG_TYPE = "wrong_type"
NOT_FINITE = "not_finite"
UNKNOWN_VALUE = "unknown_value"
NO_READINGS = "no_readings"
BAD_NAME = "bad_name"  # a key or topic level that would name a metric or tag: empty, not text
TOO_MANY_READINGS = "too_many_readings"
BAD_NMEA = "bad_nmea"  # not an NMEA 0183 sentence pynmea2 can read
BAD_CHECKSUM = "bad_checksum"  # an NMEA sentence whose *hh checksum does not match
DECODER_ERROR = "decoder_error"  # counted by ingest when decode() raised: a bug, never input

# What became of one message: exactly one of these (ingest counts each as gateway.<outcome>).
DECODED = "decoded"  # readings, nothing unreadable
PARTLY_DECODED = "partly_decoded"  # readings, and some values that could not be read
IGNORED = "ignored"  # a known message with nothing to read
UNDECODABLE = "undecodable"  # no readings; the first problem's reason says why

#: the deepest nesting the lenient parser (NaN/Infinity payloads) takes. Real payloads
#: are 3-6 levels deep; Python's parser recurses once per level against the interpreter's
#: 1000-frame limit, so it must never see 1000 levels. orjson refuses more than 1024
#: levels itself, and nothing after parsing recurses over the structure.
LENIENT_MAX_DEPTH = 128

_CACHE_LIMIT = 20000


@dataclass
class Decoded:
    """What one message gave: readings, and any problems as (reason, detail)."""

    readings: list[Reading] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    ignored: bool = False
    device: str = ""
    #: (reason, detail) when the payload gave a time that was not believed
    time_rejected: tuple[str, str] | None = None
    #: a matched rule says this topic's retained messages are readings, not state
    retained_is_reading: bool = False
    #: readings whose unit is not simply the profile's, with where it came from (the
    #: topic a device described itself on; the payload's own unit key); for `decode`
    unit_from: list[tuple[Reading, str]] | None = None

    def unit_said(self, reading: Reading, where: str) -> None:
        if self.unit_from is None:
            self.unit_from = []
        self.unit_from.append((reading, where))

    @property
    def outcome(self) -> str:
        """The one outcome this message is counted under (DECODED, PARTLY_DECODED, ...)."""
        if self.readings:
            return PARTLY_DECODED if self.problems else DECODED
        return UNDECODABLE if self.problems else IGNORED

    @property
    def reason(self) -> str:
        """Why an undecodable message was not read: its first problem's reason."""
        return self.problems[0][0] if self.problems and not self.readings else ""


@dataclass
class _Field:
    spec: FieldSpec
    path: tuple[str, ...]
    metric: str
    unit: str
    type: str
    vmap: Mapping[str, float] | None
    metric_names: frozenset[str]  # placeholders the metric uses (not tags then)
    rollup: str | None = None  # how compaction may fold old readings (None: by type)
    simple: bool = False  # fixed metric name, no value map: numbers pass straight through
    #: whether true/false is a value here. It is for a state: a mapped value, a
    #: field whose rollup is `changes` (switch, occupancy...), or one with no unit and
    #: no rollup named (true/false then makes it a state). A quantity with a unit
    #: (W, V, %, s) or a level/total/count rollup measures something: true there is
    #: a wrong type, not 1.0 W.
    takes_bool: bool = True
    #: a '*' field's metric name for each key, by the values of the other placeholders
    #: it names (a Tasmota sensor's family): names made and checked once, not per
    #: message; bounded (see `_wild_name`)
    names: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict)
    #: the placeholders besides `key` the metric names, in a fixed order
    name_parts: tuple[str, ...] = ()
    #: a '*' field's keys not to read: the route's named fields' and its `exclude`
    skip: frozenset[str] = frozenset()
    #: a '*' field's units by key (a plain dict: read for every key)
    units: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.simple = (not self.metric_names and self.vmap is None and not self.spec.tags
                       and self.spec.offset == 0)
        self.takes_bool = (self.vmap is not None or self.rollup == "changes"
                           or (not self.unit and self.rollup is None))
        self.name_parts = tuple(sorted(self.metric_names - {"key"}))
        self.units = dict(self.spec.units)


#: most names a '*' field keeps made (per set of other placeholders, and sets): past
#: these, names are made for each message as before, so odd keys cannot grow memory
_NAMES_KEPT = 512
_NAME_SETS_KEPT = 64


@dataclass
class _Route:
    device: DeviceConfig
    rule: MessageRule
    fields: list[_Field]
    wildcard: list[_Field]
    listed: frozenset[str]
    roots: list[tuple[str, list[_Field]]]  # fields grouped by their top-level key
    whole: list[_Field]  # fields reading the whole payload (path '')
    tags: dict[str, str]
    regex: re.Pattern[str] | None
    filter: str
    each_key: re.Pattern[str] | None = None  # `each:` key pattern, compiled once
    clock: DeviceClock | None = None  # where the payload says when it was measured
    #: what `each:` keys captured, by key (None: not an entry); see `_each`
    each_seen: dict[str, dict[str, str] | None] = field(default_factory=dict)


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if isinstance(obj, dict):
            if key not in obj:
                return None
            obj = obj[key]
        else:
            return None
    return obj


class Decoder:
    """Routes topics to (device, message rule) and reads payloads into readings."""

    def __init__(self, devices: Iterable[DeviceConfig], library: ProfileLibrary,
                 gateway_name: str = "", gateway_tags: Mapping[str, str] | None = None,
                 max_payload_bytes: int = 65536, max_readings: int = 500,
                 time_policy: TimePolicy | None = None) -> None:
        self.max_payload_bytes = max_payload_bytes
        #: most values one message may give (readings plus unreadable values); a message
        #: with more is refused whole as too_many_readings (see `decode`)
        self.max_readings = max_readings
        self.time_policy = time_policy or TimePolicy()
        self.exact: dict[str, list[_Route]] = {}
        self.patterned: list[_Route] = []
        self._cache: dict[str, list[tuple[_Route, dict[str, str]]]] = {}
        self._subscriptions: list[str] | None = None
        #: the tags every reading of a device carries, by device id
        self.base_tags: dict[str, dict[str, str]] = {}
        #: what devices said of themselves (gateway.profiles.learn), by device id
        self.learned: dict[str, dict[str, Learned]] = {}
        #: told when a device has described itself anew (the gateway keeps it on disk)
        self.on_learn: Callable[[dict[str, dict[str, Learned]]], None] | None = None
        self._contradictions: set[tuple[str, str]] = set()
        #: every route of a device, by device id
        self.routes_of: dict[str, list[_Route]] = {}
        for device in devices:
            profile = library.get(device.profile)
            if profile is None:
                raise ValueError(f"device {device.id!r}: unknown profile {device.profile!r}")
            base = {**(gateway_tags or {}), **device.tags, "device": device.id}
            if gateway_name:
                base["gateway"] = gateway_name
            self.base_tags[device.id] = base
            params = {k: v for k, v in profile.spec.params.items()}
            values = {k: (device.params.get(k, p.default)) for k, p in params.items()}
            for rule in profile.spec.messages:
                self._add(device, profile, rule, values, base)

    def _add(self, device: DeviceConfig, profile: Profile, rule: MessageRule,
             params: Mapping[str, Any], base: dict[str, str]) -> None:
        specs: list[FieldSpec] = profile.expand(rule.fields)
        if rule.fields_param:
            for data in field_map(params.get(rule.fields_param)):
                spec, problems = build(FieldSpec, data)
                if spec is not None and not problems:
                    specs.append(spec)
        scalars = {k: v for k, v in params.items() if isinstance(v, (str, int, float))}
        fields = [self._compile(profile, s, scalars) for s in specs]
        wildcard = [f for f in fields if f.spec.path == "*"]
        plain = [f for f in fields if f.spec.path != "*"]
        listed = frozenset(f.path[0] for f in plain if f.path)
        for f in wildcard:
            f.skip = listed | frozenset(f.spec.exclude)
        # Origins of other kinds of source live beside MQTT topics, under their kind.
        origin = rule.topic if rule.source == "mqtt" else f"{rule.source}:{rule.topic}"
        flt, regex = topic_pattern(origin, scalars)
        roots: dict[str, list[_Field]] = {}
        for f in plain:
            if f.path:
                roots.setdefault(f.path[0], []).append(f)
        whole = [f for f in plain if not f.path]
        each_key = topic_pattern(rule.each.key, {})[1] if rule.each is not None else None
        route = _Route(device, rule, plain, wildcard, listed, list(roots.items()), whole, base,
                       regex, flt, each_key, self._clock(device, rule, scalars))
        self.routes_of.setdefault(device.id, []).append(route)
        if regex is None:
            self.exact.setdefault(flt, []).append(route)
        else:
            self.patterned.append(route)

    def _clock(self, device: DeviceConfig, rule: MessageRule,
               params: Mapping[str, Any]) -> DeviceClock | None:
        """Where this rule's payloads give their time, unless this device's clock is ignored."""
        policy = self.time_policy
        path = fill_params(rule.time, params) if rule.time else ""
        if not path or "{" in path or not policy.enabled or device.time == "receive":
            return None
        return DeviceClock(path, zone(device.timezone or policy.timezone), policy.max_ahead,
                           policy.max_behind)

    @staticmethod
    def _compile(profile: Profile, spec: FieldSpec, params: Mapping[str, Any]) -> _Field:
        q = profile.quantities.get(spec.quantity) if spec.quantity else None
        metric = fill_params(spec.metric or (q.metric if q else ""), params)
        unit = spec.unit if spec.unit is not None else (q.unit if q else "")
        mtype = spec.type or (q.type if q else "gauge")
        vmap = profile.maps.get(spec.map) if isinstance(spec.map, str) else spec.map
        path = tuple(spec.path.split(".")) if spec.path and spec.path != "*" else ()
        # A mapped value (ON/OFF, heating/idle) is a state: averaging it would invent values.
        rollup = spec.rollup or (q.rollup if q else None) or ("changes" if vmap else None)
        return _Field(spec, path, metric, unit, mtype, vmap,
                      frozenset(_PLACEHOLDER.findall(metric)), rollup)

    def subscriptions(self) -> list[str]:
        """Topic filters to subscribe to: distinct, none covered by another.

        A broker may deliver one copy of a message per matching subscription
        (MQTT 3.1.1, 3.3.5), so `a/status/sys` is dropped when `a/status/+` is there.
        """
        if self._subscriptions is None:
            found = [f for f, routes in self.exact.items() if routes[0].rule.source == "mqtt"]
            found += [r.filter for r in self.patterned if r.rule.source == "mqtt"]
            self._subscriptions = minimal_filters(found)
        return list(self._subscriptions)

    def subscribed(self, topic: str) -> bool:
        """Whether a message on `topic` would reach the gateway at all."""
        # Here, not at the top: reading a config (check, status) needs no MQTT client.
        from paho.mqtt.client import topic_matches_sub as mqtt_topic_matches

        return any(mqtt_topic_matches(f, topic) for f in self.subscriptions())

    def routes(self, topic: str) -> list[tuple[_Route, dict[str, str]]]:
        hit = self._cache.get(topic)
        if hit is not None:
            return hit
        out: list[tuple[_Route, dict[str, str]]] = [(r, {}) for r in self.exact.get(topic, ())]
        for route in self.patterned:
            m = route.regex.match(topic) if route.regex else None
            if m:
                out.append((route, {k: v for k, v in m.groupdict().items() if v is not None}))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic] = out
        return out

    def decode(self, topic: str, payload: bytes, received: float,
               kind: str = "mqtt") -> Decoded:
        """Decode one message from `topic`, its origin within its `kind` of source (an
        MQTT topic; a serial port or a check's name for the sources to come: their
        profiles will route by kind too). Never raises on bad input."""
        result = Decoded()
        routes = self.routes(topic if kind == "mqtt" else f"{kind}:{topic}")
        if not routes:
            where = repr(topic) if kind == "mqtt" else f"{kind} {topic!r}"
            result.problems.append((UNKNOWN_TOPIC, f"no device listens on {where}"))
            return result
        result.device = routes[0][0].device.id
        limit = LEARN_MAX_BYTES if all(r.rule.learn for r, _ in routes) else \
            self.max_payload_bytes
        if len(payload) > limit:
            result.problems.append((TOO_LARGE, (f"{len(payload)} bytes on {topic!r}, "
                                                f"limit {self.max_payload_bytes}")))
            return result
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.problems.append((NOT_UTF8, (f"payload on {topic!r} is not UTF-8 "
                                               f"(byte {exc.start})")))
            return result
        parsed: dict[str, Any] = {}
        stamps: dict[tuple[Any, ...], Any] = {}
        matched = strict = False
        for route, captures in routes:
            rule = route.rule
            if rule.ignore:
                continue
            body = self._body(rule.payload, text, parsed)
            if type(body) is _Bad:
                if rule.payload in ("json", "readings"):
                    result.problems.append((BAD_JSON, (f"payload on {topic!r} is not JSON"
                                                       f"{body.why}: {_excerpt(text)}")))
                    return result
                if body.reason:
                    result.problems.append((body.reason, f"{body.why} from {topic!r}: "
                                                         f"{_excerpt(text)}"))
                    return result
                continue
            if rule.when is not None and not rule.when.holds(_get(body, rule.when.keys)):
                continue
            if rule.skip and isinstance(body, str) and body in rule.skip:
                continue  # "no value now": known, nothing to read
            if rule.learn:
                self._learn(route, body, captures, topic)
                continue  # a description, not a measurement: nothing to store
            if captures and not "".join(captures.values()).isascii():
                bad = _captures_problem(captures)
                if bad is not None:  # a topic level that cannot become a tag
                    result.problems.append((BAD_NAME, f"topic {topic!r}: {bad}"))
                    continue
            matched = True
            strict = strict or not rule.partial
            result.device = route.device.id
            result.retained_is_reading = result.retained_is_reading or rule.retained == "reading"
            found = len(result.problems)
            first = len(result.readings)
            stamp = None
            if route.clock is not None:
                # Two rules of one message (Tasmota's SENSOR: named fields, any sensor)
                # read its time once.
                clock = route.clock
                key = (clock.path, clock.tz, clock.ahead, clock.behind, id(body))
                if key in stamps:
                    stamp = stamps[key]
                else:
                    stamp = stamps[key] = clock.stamp(body, received)
            try:
                self._read(route, captures, body, received if stamp is None else stamp.ts,
                           result)
            except _TooMany:
                # Refused whole, not cut at the limit: which values came first is an
                # accident of the payload's order, and a message this large is not
                # one a real device sends (a Shelly Pro NotifyFullStatus or a
                # multi-sensor Tasmota gives dozens), so nothing of it is stored.
                result.readings.clear()
                result.problems[:] = [(TOO_MANY_READINGS, (
                    f"payload on {topic!r} ({len(payload)} bytes) holds more than "
                    f"{self.max_readings} values to read (mqtt.max_readings_per_message)"))]
                return result
            if rule.units_from and type(body) is dict and len(result.readings) > first:
                self._convert_units(route, body, result, first)
            if stamp is not None:
                if stamp.from_device:
                    for reading in result.readings[first:]:
                        reading.device_time = True
                elif result.time_rejected is None and len(result.readings) > first:
                    # Said only where readings got the receive time instead.
                    result.time_rejected = (stamp.rejected, f"device {route.device.id!r}: "
                                            f"{stamp.detail} (topic {topic!r})")
            # Field problems name the device and field; add the topic, as the other
            # reasons give it, so a log line leads to the message that caused it.
            for i in range(found, len(result.problems)):
                reason, detail = result.problems[i]
                result.problems[i] = (reason, f"{detail} (topic {topic!r})")
        if not matched:
            result.ignored = not result.problems  # else a topic level was no text (bad_name)
        elif not result.readings and not result.problems and not strict:
            result.ignored = True  # a change notification about something not read here
        elif not result.readings and not result.problems:
            result.problems.append((NO_READINGS, (f"nothing readable in payload on {topic!r}: "
                                                  f"{_excerpt(text)}")))
        return result

    @staticmethod
    def _convert_units(route: _Route, body: dict[str, Any], result: Decoded,
                       first: int) -> None:
        """Values the payload says are in another unit than the profile reads (Tasmota's
        TempUnit F): converted to the profile's; in a unit it does not know: dropped,
        and said, rather than stored under the wrong unit."""
        for unit, key in route.rule.units_from.items():
            word = body.get(key)
            if word is None or (unit, str(word)) in _SAME_UNIT:
                continue
            convert = _CONVERSIONS.get((unit, str(word)))
            readings = result.readings
            if convert is None:
                kept = readings[:first] + [r for r in readings[first:] if r.unit != unit]
                if len(kept) < len(readings):
                    result.problems.append((UNKNOWN_VALUE, (
                        f"device {route.device.id!r}: {key} {_excerpt(str(word))!r} is not a "
                        f"unit it can turn into {unit}; those values were not read")))
                readings[:] = kept
                continue
            for r in readings[first:]:
                if r.unit == unit:
                    r.value = convert(r.value)
                    result.unit_said(r, f"the payload's {key} {word}, converted")

    def _learn(self, route: _Route, body: Any, captures: dict[str, str], topic: str) -> None:
        """Keep what a describing message says of this route's device (its units and
        enums), and say once where a profile's own field disagrees (the profile wins)."""
        found = LEARNERS[route.rule.learn](body, route.device.params, captures)
        if found is None:
            return
        found = {k: replace(v, source=topic) for k, v in found.items()}
        device = route.device.id
        known = self.learned.setdefault(device, {})
        if any(known.get(k) != v for k, v in found.items()):
            known.update(found)
            if self.on_learn is not None:
                self.on_learn(self.learned)
        for other in self.routes_of.get(device, ()):
            for f in other.fields:
                said = found.get(f.path[0]) if len(f.path) == 1 else None
                if said is not None and said.unit and f.unit and said.unit != f.unit and \
                        (device, f.path[0]) not in self._contradictions:
                    self._contradictions.add((device, f.path[0]))
                    log.warning("device %r: %s says %s is in %s; its profile reads it in "
                                "%s, which is kept", device, topic, f.path[0], said.unit,
                                f.unit)

    @staticmethod
    def _body(kind: str, text: str, parsed: dict[str, Any]) -> Any:
        if kind == "text":
            return text.strip()
        if kind == "nmea":
            try:
                return nmea_body(text)
            except Unreadable as exc:
                return _Bad(exc.why, exc.reason)
        if kind == "csv":
            return csv_body(text)
        if "json" not in parsed:
            try:
                # orjson: 0.9 us against json's 6.7 us for a Tasmota SENSOR payload.
                parsed["json"] = orjson.loads(text)
            except orjson.JSONDecodeError:
                parsed["json"] = _lenient_json(text)
        body = parsed["json"]
        if kind == "auto":
            return body if isinstance(body, dict) else text.strip()
        return body

    def _read(self, route: _Route, captures: dict[str, str], body: Any, ts: float,
              result: Decoded) -> None:
        rule = route.rule
        if rule.payload == "readings":
            self._given(route, body, ts, result)
            return
        if rule.availability is not None:
            self._availability(route, captures, rule.availability, body, ts, result)
        if not (route.fields or route.wildcard):
            return
        if rule.each is not None:
            each = rule.each
            for entry, more in _each(body, each.path, each.key, route.each_key, each.exclude,
                                     each.family, route.each_seen):
                if more and not "".join(more.values()).isascii():
                    bad = _captures_problem(more)
                    if bad is not None:  # a key such as "switch:\ud800"
                        result.problems.append((BAD_NAME, (f"device {route.device.id!r} "
                                                           f"entry {_excerpt(repr(more))}: "
                                                           f"{bad}")))
                        continue
                self._fields(route, {**captures, **more}, entry, ts, result)
        else:
            self._fields(route, captures, body, ts, result)

    def _given(self, route: _Route, body: Any, ts: float, result: Decoded) -> None:
        """Readings a local check made itself (payload `readings`): each its own metric,
        unit, type and tags, on top of the device's tags."""
        items = body if isinstance(body, list) else [None]
        if len(items) > self.max_readings:
            raise _TooMany
        for i, item in enumerate(items):
            where = f"device {route.device.id!r} reading {i}"
            if not isinstance(item, dict) or not isinstance(item.get("metric"), str):
                result.problems.append((WRONG_TYPE, f"{where}: not an object with a metric"))
                continue
            value = item.get("value")
            mtype = item.get("type", "gauge")
            tags = item.get("tags") or {}
            if type(value) not in (int, float) or mtype not in ("gauge", "count", "rate") \
                    or not isinstance(tags, dict):
                result.problems.append((WRONG_TYPE, f"{where} ({_excerpt(item['metric'])}): "
                                                    "value must be a number, type gauge, "
                                                    "count or rate, tags an object"))
                continue
            reading = Reading(item["metric"], float(value), ts, mtype,
                              str(item.get("unit") or ""),
                              {**route.tags, **{str(k): str(v) for k, v in tags.items()}},
                              route.device.priority)
            bad = unstorable(reading)
            if bad is not None:
                result.problems.append((NOT_FINITE if "finite" in bad else BAD_NAME,
                                        f"{where}: {bad}"))
                continue
            result.readings.append(reading)

    def _availability(self, route: _Route, captures: dict[str, str], spec: Availability,
                      body: Any, ts: float, result: Decoded) -> None:
        word = body
        if spec.path and isinstance(body, dict):
            word = _get(body, tuple(spec.path.split(".")))
        if isinstance(word, (dict, list)):
            # An object or array is no online/offline word (and str() of one nested
            # a thousand deep would recurse a thousand deep).
            result.problems.append((UNKNOWN_VALUE, (f"device {route.device.id!r}: availability "
                                                    f"payload is a JSON {_kind(word)}, not "
                                                    "online/offline")))
            return
        word = str(word).strip().lower() if word is not None else ""
        if word in (w.lower() for w in spec.online):
            value = 1.0
        elif word in (w.lower() for w in spec.offline):
            value = 0.0
        else:
            result.problems.append((UNKNOWN_VALUE, (f"device {route.device.id!r}: availability "
                                                    f"payload {_excerpt(word)!r} is neither "
                                                    "online nor offline")))
            return
        result.readings.append(self._reading(route, "device.online", value, ts, "", "gauge",
                                             captures, frozenset(), "changes"))

    def _fields(self, route: _Route, captures: dict[str, str], body: Any, ts: float,
                result: Decoded) -> None:
        out = result.readings
        if len(out) + len(result.problems) > self.max_readings:
            raise _TooMany  # e.g. thousands of `each:` entries
        tags = route.tags
        priority = route.device.priority
        plain = not captures
        for f in route.whole:
            if type(body) is list:
                self._emit_array(route, f, body, captures, ts, result, "payload")
            else:
                self._emit(route, f, body, captures, ts, result, "payload")
        if type(body) is not dict:
            return
        for root, fields in route.roots:
            top = body.get(root)
            if top is None:
                continue  # e.g. no DS18B20 block in this SENSOR message: skip its fields
            for f in fields:
                value = top
                for key in f.path[1:]:
                    if type(value) is dict:
                        value = value.get(key)
                    elif type(value) is list and key.isdigit() and int(key) < len(value):
                        value = value[int(key)]  # sensors.0.temp: the first element's
                    else:
                        value = None
                    if value is None:
                        break
                if value is None:
                    continue
                kind = type(value)
                if plain and f.simple and (kind is float or kind is int):
                    # The common case, kept short: a plain number for a fixed metric.
                    number = value * f.spec.scale
                    if number - number == 0:  # false for NaN and infinities
                        out.append(Reading(f.metric, float(number), ts, f.type,  # type: ignore[arg-type]
                                           f.unit, tags, priority, f.rollup))  # type: ignore[arg-type]
                        continue
                if kind is list:
                    self._emit_array(route, f, value, captures, ts, result, f.spec.path)
                else:
                    self._emit(route, f, value, captures, ts, result, f.spec.path)
        if route.wildcard and isinstance(body, dict):
            limit = self.max_readings
            learned = self.learned.get(route.device.id) if self.learned else None
            for f in route.wildcard:
                units = f.units
                # What every key of this entry shares, looked up once (this loop runs for
                # every number of every sensor of a Tasmota SENSOR message).
                entry_tags = {**tags, **{k: v for k, v in captures.items()
                                         if v != "" and k not in f.metric_names},
                              **f.spec.tags}
                names = self._wild_names(f, captures)
                skip, scale, mtype, rollup, default_unit = \
                    f.skip, f.spec.scale, f.type, f.rollup, f.unit
                plain_values = f.vmap is None and f.spec.offset == 0
                for key, value in body.items():
                    if key in skip:
                        continue
                    kind = type(value)
                    if (kind is float or kind is int) and plain_values:
                        # The common case, kept short: a number under a plain key.
                        metric = names.get(key) if names is not None else None
                        if metric is None:
                            metric = self._wild_name(f, captures, key, names)
                        number = value * scale
                        if number - number == 0 and metric:
                            if len(out) + len(result.problems) >= limit:
                                raise _TooMany
                            unit = units.get(key, default_unit)
                            said = None
                            if not unit and learned is not None and key in learned:
                                said = learned[key]
                                unit = said.unit
                            out.append(Reading(metric, float(number), ts, mtype,  # type: ignore[arg-type]
                                               unit, entry_tags, priority,
                                               rollup))  # type: ignore[arg-type]
                            if said is not None and unit:
                                result.unit_said(out[-1], said.source)
                            continue
                    if isinstance(value, (bool, int, float)):
                        if len(out) + len(result.problems) >= limit:
                            raise _TooMany
                        self._emit(route, f, value, {**captures, "key": key.lower()}, ts,
                                   result, key, units.get(key))
                    elif f.spec.nested and isinstance(value, (dict, list)):
                        self._nested(route, f, value, captures, ts, result, key.lower(), 1)
                    elif kind is str and learned is not None and key in learned \
                            and value in learned[key].values:
                        # An enum the device described: its word's place in the list.
                        if len(out) + len(result.problems) >= limit:
                            raise _TooMany
                        self._emit(route, f, learned[key].values.index(value),
                                   {**captures, "key": key.lower()}, ts, result, key, "")

    @staticmethod
    def _wild_names(f: _Field, captures: dict[str, str]) -> dict[str, str] | None:
        """The names a '*' field has made for these captures, or None past the bound."""
        if not f.metric_names:
            return None
        parts = tuple(captures.get(n, "") for n in f.name_parts)
        names = f.names.get(parts)
        if names is None and len(f.names) < _NAME_SETS_KEPT:
            names = f.names[parts] = {}
        return names

    @staticmethod
    def _wild_name(f: _Field, captures: dict[str, str], key: str,
                   names: dict[str, str] | None) -> str:
        """A '*' field's metric for `key`; "" when the name would be odd (empty or dotted
        parts, not ASCII), which the slow path then reports."""
        if not f.metric_names:
            return f.metric
        metric = f.metric.format_map({**captures, "key": key.lower()})
        if (not metric.isascii() or ".." in metric or metric[:1] in ("", ".")
                or metric[-1] == "."):
            return ""
        if names is not None and len(names) < _NAMES_KEPT:
            names[key] = metric
        return metric

    def _nested(self, route: _Route, f: _Field, value: Any, captures: dict[str, str],
                ts: float, result: Decoded, name: str, depth: int) -> None:
        """A '*' field's nested object or array: its numbers, named by their dotted path;
        an array's elements tagged by position (1, 2 ...). At most NESTED_DEPTH deep."""
        if depth > NESTED_DEPTH:
            return
        if type(value) is list:
            items: Iterable[tuple[str, Any, dict[str, str]]] = (
                (name, v, {f.spec.array_tag: str(i + 1)}) for i, v in enumerate(value))
        else:
            items = ((f"{name}.{k.lower()}", v, {}) for k, v in value.items())
        for key, item, more in items:
            if len(result.readings) + len(result.problems) >= self.max_readings:
                raise _TooMany
            here = {**captures, **more}
            if isinstance(item, (bool, int, float)):
                self._emit(route, f, item, {**here, "key": key}, ts, result, key)
            elif isinstance(item, (dict, list)):
                self._nested(route, f, item, here, ts, result, key, depth + 1)

    def _emit_array(self, route: _Route, f: _Field, value: list[Any], captures: dict[str, str],
                    ts: float, result: Decoded, where: str) -> None:
        """An array is one value per channel (Tasmota's multi-channel ENERGY block).

        Not recursive: an array inside it is a wrong type for `_emit`.
        """
        if len(result.readings) + len(result.problems) + len(value) > self.max_readings:
            raise _TooMany
        tag = f.spec.array_tag
        for i, item in enumerate(value):
            self._emit(route, f, item, {**captures, tag: str(i + 1)}, ts, result,
                       f"{where}[{i}]")

    def _emit(self, route: _Route, f: _Field, value: Any, captures: dict[str, str], ts: float,
              result: Decoded, where: str, unit: str | None = None) -> None:
        if f.spec.tags:
            captures = {**captures, **{k: v.format_map(captures) if "{" in v else v
                                       for k, v in f.spec.tags.items()}}
        if type(value) is bool and not f.takes_bool:
            result.problems.append((WRONG_TYPE, (f"device {route.device.id!r} field {where!r}: "
                                                 f"expected a number in {f.unit or f.metric}, "
                                                 f"got {str(value).lower()}")))
            return
        number = _number(value, f.vmap)
        if isinstance(number, str) and f.spec.also_numbers:
            number = _number(value, None)
        if isinstance(number, str):
            reason = UNKNOWN_VALUE if f.vmap is not None and isinstance(value, str) else WRONG_TYPE
            result.problems.append((reason, (f"device {route.device.id!r} field {where!r}: "
                                             f"{number}")))
            return
        number = number * f.spec.scale + f.spec.offset
        if math.isnan(number) or math.isinf(number):
            result.problems.append((NOT_FINITE, (f"device {route.device.id!r} field {where!r}: "
                                                 f"{_excerpt(repr(value))} is not a finite "
                                                 "number")))
            return
        metric = f.metric
        if f.metric_names:
            # Captures that become tags were checked where they were taken (topic,
            # each: key); one named in the metric may still leave an empty part.
            metric = metric.format_map(captures)
            # The usual name passes the quick test; only an odd one is looked at closely.
            if (not metric.isascii() or ".." in metric or metric[:1] in ("", ".")
                    or metric[-1] == "."):
                bad = _metric_problem(metric, captures, f.metric_names)
                if bad is not None:
                    result.problems.append((BAD_NAME, (f"device {route.device.id!r} field "
                                                       f"{where!r}: {bad}")))
                    return
        # true/false with no rollup named is a state too (occupancy, contact, a relay).
        rollup = f.rollup or ("changes" if isinstance(value, bool) else None)
        unit = f.unit if unit is None else unit
        said = None
        if not unit and self.learned:
            # The device described this metric (a Home Assistant discovery config).
            said = self.learned.get(route.device.id, {}).get(metric)
            if said is not None:
                unit = said.unit
        result.readings.append(self._reading(route, metric, number, ts, unit, f.type,
                                             captures, f.metric_names, rollup))
        if said is not None and unit:
            result.unit_said(result.readings[-1], said.source)

    @staticmethod
    def _reading(route: _Route, metric: str, value: float, ts: float, unit: str, mtype: str,
                 captures: dict[str, str], used: frozenset[str],
                 rollup: str | None = None) -> Reading:
        tags = route.tags
        extra = {k: v for k, v in captures.items() if v != "" and k not in used and k != "key"}
        if extra:
            tags = {**tags, **extra}
        return Reading(metric, value, ts, mtype, unit, tags,  # type: ignore[arg-type]
                       route.device.priority, rollup)  # type: ignore[arg-type]


def unstorable(reading: Reading) -> str | None:
    """Why the store or a sink could not keep `reading`, or None when it can.

    What every reading `Decoder.decode` returns satisfies: a finite float value, a
    metric name with no empty dotted part, and a unit and tags that are text
    (UTF-8 encodable, tags non-empty).
    """
    value = reading.value
    if type(value) is not float or not math.isfinite(value):
        return f"value {value!r} is not a finite number"
    metric = reading.metric
    if not isinstance(metric, str) or "" in metric.split("."):
        return f"metric name {_excerpt(repr(metric))} is empty or has an empty part"
    texts = [("metric name", metric), ("unit", reading.unit)]
    for key, tag in reading.tags.items():
        if not isinstance(key, str) or not isinstance(tag, str) or not key or not tag:
            return f"tag {key!r} = {tag!r} is not a non-empty text"
        texts.append((f"tag {key}", key))
        texts.append((f"tag {key}", tag))
    for what, text in texts:
        if not isinstance(text, str):
            return f"{what} is not text"
        if not text.isascii() and _text_problem(text) is not None:
            return f"{what} {_excerpt(repr(text))} {_text_problem(text)}"
    return None


class _Bad:
    """A payload that is not JSON (`why` adds to the message, e.g. too deeply nested)."""

    def __init__(self, why: str = "", reason: str = "") -> None:
        self.why = why
        #: the reason it is counted under, for a payload form other than JSON
        self.reason = reason


_BAD = _Bad()


#: (the profile's unit, the payload's word) -> conversion; words meaning the same unit
_CONVERSIONS = {
    ("°C", "F"): lambda v: (v - 32.0) * 5.0 / 9.0,
    ("°C", "K"): lambda v: v - 273.15,
    ("hPa", "mmHg"): lambda v: v * 1.333224,
    ("hPa", "inHg"): lambda v: v * 33.86389,
}
_SAME_UNIT = {("°C", "C"), ("hPa", "hPa"), ("hPa", "mbar")}

#: how deep a '*' field with `nested` looks into objects and arrays
NESTED_DEPTH = 4
#: a describing message (Zigbee2MQTT's bridge/devices lists every device's exposes) may be
#: this large, beyond mqtt.max_payload_bytes
LEARN_MAX_BYTES = 4 * 1024 * 1024


class _TooMany(Exception):
    """Raised inside the walk when a message gives more than `max_readings` values."""


# A JSON string (escapes skipped whole) or one bracket: what the depth scan looks at.
_JSON_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _lenient_json(text: str) -> Any:
    """Parse JSON that orjson refused, for the NaN/Infinity tokens some firmwares send.

    Python's parser reads NaN and Infinity, so such values are reported as
    not_finite rather than as bad JSON. It is kept from what orjson refuses for
    good reasons: nesting deeper than LENIENT_MAX_DEPTH (it would recurse past
    the interpreter's limit), and integers too large for a float (it would make
    them exact ints that overflow float(); orjson makes them floats, so here too).
    Lone UTF-16 surrogates (\\ud800) pass: they are refused where a key would
    become a metric name or tag (bad_name). Returns _BAD for anything it cannot read.
    """
    if text.count("[") + text.count("{") > LENIENT_MAX_DEPTH and _too_deep(text):
        return _Bad(f" (nested more than {LENIENT_MAX_DEPTH} levels deep)")
    try:
        return json.loads(text, parse_int=_json_int)
    except (ValueError, RecursionError):
        pass
    # Older Tasmota builds print a failed sensor as a bare `nan` (or `inf`): read those
    # as JSON's NaN, so the message's good values are kept and the bad one is counted.
    fixed = _BARE_NOT_FINITE.sub(_not_finite_token, text)
    if fixed == text:
        return _BAD
    try:
        return json.loads(fixed, parse_int=_json_int)
    except (ValueError, RecursionError):
        return _BAD


# A JSON string (left as it is) or a bare nan / inf / -inf token where a value goes.
_BARE_NOT_FINITE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|(?<=[:,\[\s])(-?)(nan|inf)(?=[\s,}\]])',
                              re.IGNORECASE)


def _not_finite_token(m: re.Match[str]) -> str:
    if m.group(2) is None:
        return m.group(0)
    return "NaN" if m.group(2).lower() == "nan" else f"{m.group(1)}Infinity"


def _too_deep(text: str) -> bool:
    depth = 0
    for m in _JSON_STRUCTURE.finditer(text):
        ch = m.group()
        if ch == "[" or ch == "{":
            depth += 1
            if depth > LENIENT_MAX_DEPTH:
                return True
        elif ch == "]" or ch == "}":
            depth -= 1
    return False


def _json_int(digits: str) -> int | float:
    # Beyond 15 digits an int gains nothing over a float here (values become floats),
    # and float() of a 400-digit int overflows where float("9" * 400) is inf.
    return int(digits) if len(digits) <= 15 else float(digits)


def _kind(value: Any) -> str:
    return "object" if isinstance(value, dict) else "array"


def _text_problem(text: str) -> str | None:
    """Why `text` cannot be a metric name part or tag value, or None."""
    if not text:
        return "is empty"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text"
    return None


def _metric_problem(metric: str, captures: Mapping[str, str],
                    used: frozenset[str]) -> str | None:
    """Why a metric name built from captures could not be stored, or None."""
    if "" in metric.split("."):
        return (f"metric name {_excerpt(metric)!r} would have an empty part (from "
                f"{', '.join('{' + n + '}' for n in sorted(used))} = "
                f"{', '.join(repr(_excerpt(captures.get(n, ''))) for n in sorted(used))})")
    bad = _text_problem(metric)
    return None if bad is None else f"metric name {_excerpt(metric)!r} {bad}"


def _captures_problem(captures: Mapping[str, str]) -> str | None:
    """Why a capture (a topic level, part of an `each:` key) cannot be a tag, or None.
    An empty one is no problem here: it becomes no tag (see `_reading`), and one a
    metric names is checked with the metric."""
    for name, value in captures.items():
        bad = _text_problem(value) if value else None
        if bad is not None:
            return f"{{{name}}} = {_excerpt(value)!r} {bad}"
    return None


def _number(value: Any, vmap: Mapping[str, float] | None) -> float | str:
    """A float, or a string saying why the value is not one."""
    if isinstance(value, bool):
        if vmap is not None and str(value).lower() in vmap:
            return float(vmap[str(value).lower()])
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if vmap is not None:
            if value in vmap:
                return float(vmap[value])
            low = value.lower()
            for k, v in vmap.items():
                if k.lower() == low:
                    return float(v)
            return f"{_excerpt(value)!r} is not one of {', '.join(map(repr, vmap))}"
        try:
            return float(value)
        except ValueError:
            return f"{_excerpt(value)!r} is not a number"
    if isinstance(value, list):
        return "expected a number, got an array inside an array (one value per channel is read)"
    if isinstance(value, dict):
        return "expected a number, got an object"
    return "expected a number, got null" if value is None else \
        f"expected a number, got {type(value).__name__}"


def _each(body: Any, path: str, key_pattern: str, regex: re.Pattern[str] | None,
          exclude: tuple[str, ...] = (), family: str = "",
          seen: dict[str, dict[str, str] | None] | None = None
          ) -> Iterator[tuple[Any, dict[str, str]]]:
    """The entries of an `each:` rule with what their key captures; `seen` keeps what
    keys captured before (the same sensors come in every message), up to _KEYS_KEPT."""
    obj = _get(body, tuple(path.split("."))) if path else body
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        if key in exclude:
            continue
        if regex is None:
            if key == key_pattern:
                yield value, {}
            continue
        more = seen.get(key, _UNSEEN) if seen is not None else _UNSEEN
        if more is _UNSEEN:
            m = regex.match(key)
            more = m.groupdict() if m else None
            if more is not None and family and family in more:
                more["family"] = _INSTANCE.sub("", more[family]).lower()
            if seen is not None and len(seen) < _KEYS_KEPT:
                seen[key] = more
        if more is not None:
            yield value, more


_UNSEEN: dict[str, str] = {}
#: most `each:` keys a route remembers what they captured (sensor names, switch:0 ...)
_KEYS_KEPT = 256


#: a sensor's instance number (Tasmota's DS18B20-1, DS18B20-2 ...)
_INSTANCE = re.compile(r"-\d+$")


def _excerpt(text: str, limit: int = 80) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
