"""Fuzzing every profile in devices/: decode() never raises, and what it returns can be stored.

For each topic of each profile (its documented examples' topics, and each
message rule's topic with its captures filled by arbitrary text, empty levels
included), hypothesis generates payloads of the kinds that broke the decoder
before: JSON-ish values built from the profile's own keys (so the fields are
reached), huge integers, NaN and Infinity tokens, lone UTF-16 surrogates in
keys and strings, wrong types, arrays, nesting thousands of levels deep, flat
arrays of tens of thousands of values, and bytes that are not UTF-8.

Every reading must be storable as the outbox and sinks need it (finite float,
metric with no empty dotted part, non-empty UTF-8-encodable tags), at most
`max_readings` values per message, and the outcome must be one of the four.
Time is bounded by max_examples (a few seconds a profile); no example database
is written.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config.schema import DeviceConfig
from gateway.profiles.decoder import (
    DECODED,
    IGNORED,
    PARTLY_DECODED,
    UNDECODABLE,
    Decoder,
    unstorable,
)
from gateway.profiles.library import Profile, ProfileLibrary

LIBRARY = ProfileLibrary.builtin()
PROFILES = sorted(LIBRARY.profiles)
MAX_READINGS = 500
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
SURROGATES = ["\ud800", "\udfff", "a\udc80b"]
SETTINGS = settings(max_examples=400, deadline=None, database=None, derandomize=False,
                    suppress_health_check=list(HealthCheck))


def _devices(profile: Profile) -> list[DeviceConfig]:
    """One device per distinct set of example parameters (generic-json has several)."""
    seen: list[dict[str, Any]] = []
    for ex in profile.spec.examples:
        params = dict(ex.params)
        if params not in seen:
            seen.append(params)
    return [DeviceConfig(id=f"dev{i}", profile=profile.name, params=p, tags={"room": "hall"})
            for i, p in enumerate(seen)]


@cache
def _decoder(name: str) -> Decoder:
    return Decoder(_devices(LIBRARY.profiles[name]), LIBRARY, gateway_name="gw",
                   max_payload_bytes=65536, max_readings=MAX_READINGS)


def _keys(profile: Profile) -> list[str]:
    """Keys and words that reach the profile's fields, `each:` walks and `when:` rules."""
    words: set[str] = {"", "state", "online", "offline", "ON", "OFF", "true", "nan"}
    specs = [f for group in profile.field_groups.values() for f in group]
    for rule in profile.spec.messages:
        specs.extend(profile.expand(rule.fields))
        if rule.each is not None:
            words.update(rule.each.path.split("."))
            words.update(PLACEHOLDER.sub(v, rule.each.key) for v in ("0", "1", "", "l2", "\ud800"))
        if rule.when is not None:
            words.update(rule.when.keys)
            equals = rule.when.equals
            words.update((equals,) if isinstance(equals, str) else equals)
        if rule.availability is not None:
            words.update((*rule.availability.online, *rule.availability.offline))
            words.update(rule.availability.path.split("."))
    for spec in specs:
        words.update(spec.path.split("."))
    for ex in profile.spec.examples:
        payload = ex.payload
        if isinstance(payload, str) and payload.startswith("{"):
            payload = json.loads(payload)
        if isinstance(payload, dict):
            words.update(payload)
    return sorted(words)


def _field_paths(profile: Profile) -> list[tuple[str, ...]]:
    paths = {()}
    for rule in profile.spec.messages:
        for spec in profile.expand(rule.fields):
            if spec.path not in ("", "*"):
                paths.add(tuple(spec.path.split(".")))
        if rule.each is not None:
            key = PLACEHOLDER.sub("0", rule.each.key)
            base = tuple(p for p in rule.each.path.split(".") if p)
            for spec in profile.expand(rule.fields):
                tail = tuple(spec.path.split(".")) if spec.path not in ("", "*") else ()
                paths.add((*base, key, *tail))
    return sorted(paths)


def _topics(profile: Profile) -> st.SearchStrategy[str]:
    examples = sorted({ex.topic for ex in profile.spec.examples})
    # An empty level (a/sensor//state) is what MQTT allows and made `sensor.` once.
    levels = st.one_of(st.sampled_from(["", "0", "x", "a b", "\ud800", "+", "#"]),
                       st.just(""), st.text(max_size=8))
    templates = []
    for device in _devices(profile):
        params = {k: v for k, v in device.params.items() if isinstance(v, str)}
        for name, p in profile.spec.params.items():
            if name not in params and isinstance(p.default, str):
                params[name] = p.default
        for rule in profile.spec.messages:
            filled = PLACEHOLDER.sub(lambda m, p=params: p.get(m[1], m[0]), rule.topic)
            templates.append(filled)

    def fill(template: str, draw: st.DrawFn) -> str:
        return PLACEHOLDER.sub(lambda m: draw(levels), template).replace("+", draw(levels)) \
            .replace("#", draw(levels))

    @st.composite
    def from_template(draw: st.DrawFn) -> str:
        return fill(draw(st.sampled_from(templates)), draw)

    return st.one_of(st.sampled_from(examples), from_template())


def _scalars(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.booleans(),
        st.integers(min_value=-(10**20), max_value=10**20),
        st.integers(min_value=10**300, max_value=10**400),  # beyond a float
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(keys + SURROGATES), st.text(max_size=12))


def _values(keys: list[str]) -> st.SearchStrategy[Any]:
    key = st.one_of(st.sampled_from(keys + SURROGATES), st.text(max_size=6))
    return st.recursive(
        _scalars(keys),
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(key, inner, max_size=6)),
        max_leaves=25)


def _at(path: tuple[str, ...], value: Any) -> Any:
    for part in reversed(path):
        value = {part: value}
    return value


def _opening(path: tuple[str, ...]) -> str:
    """The JSON text that opens objects down to `path` ({"a":{"b": for a.b)."""
    return "".join("{" + json.dumps(p) + ":" for p in path)


def _payloads(profile: Profile) -> st.SearchStrategy[bytes]:
    keys = _keys(profile)
    paths = _field_paths(profile)
    when = [(r.when.keys, r.when.equals) for r in profile.spec.messages if r.when is not None]

    def dump(value: Any, ascii_only: bool) -> bytes:
        # NaN and inf become the NaN/Infinity tokens; without ensure_ascii a lone
        # surrogate becomes bytes that are not UTF-8.
        return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")

    @st.composite
    def structured(draw: st.DrawFn) -> bytes:
        value = _at(draw(st.sampled_from(paths)), draw(_values(keys)))
        if when and isinstance(value, dict) and draw(st.booleans()):
            keys_, equals = draw(st.sampled_from(when))
            words = (equals,) if isinstance(equals, str) else equals
            value = {**value, **_at(keys_, draw(st.sampled_from(list(words))))}
        return dump(value, draw(st.booleans()))

    @st.composite
    def deep(draw: st.DrawFn) -> bytes:
        depth = draw(st.integers(min_value=100, max_value=3000))
        opening, closing = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"":', "}")]))
        inner = draw(st.sampled_from(["1", "NaN", "[]", '"x"', "1e999"]))
        nested = opening * depth + inner + closing * depth
        path = draw(st.sampled_from(paths))
        head = _opening(path)
        extra = draw(st.sampled_from(["", ',"nan":NaN']))  # NaN sends it to the lenient parser
        text = head + nested + "}" * len(path)
        if extra and text.startswith("{"):
            text = text[:-1] + extra + "}"
        return text.encode("utf-8")

    @st.composite
    def wide(draw: st.DrawFn) -> bytes:
        n = draw(st.integers(min_value=0, max_value=32000))
        item = draw(st.sampled_from(["1", "true", '"x"', "[1]", "NaN", "1e999"]))
        flat = "[" + ",".join([item] * n) + "]"
        if draw(st.booleans()):
            flat = "{" + ",".join(f'"k{i}":{item}' for i in range(n // 4)) + "}"
        path = draw(st.sampled_from(paths))
        return (_opening(path) + flat + "}" * len(path)).encode()

    huge = st.sampled_from([b'{"a":NaN,"b":' + b"9" * 400 + b"}", b"9" * 400, b"-" + b"9" * 5000,
                            b"1e999", b"NaN", b"-Infinity", b'"\\ud800"', b'{"\\udfff":1}'])
    text = st.one_of(st.text(max_size=40), st.sampled_from(keys),
                     st.floats().map(repr), st.integers().map(str)) \
        .map(lambda t: t.encode("utf-8", "surrogatepass"))
    return st.one_of(structured(), deep(), wide(), huge, text, st.binary(max_size=40))


@pytest.mark.parametrize("name", PROFILES)
def test_decode_never_raises_and_every_reading_is_storable(name: str) -> None:
    profile = LIBRARY.profiles[name]
    decoder = _decoder(name)

    @SETTINGS
    @given(topic=_topics(profile), payload=_payloads(profile))
    def check(topic: str, payload: bytes) -> None:
        result = decoder.decode(topic, payload, 1_800_000_000.0)
        assert result.outcome in (DECODED, PARTLY_DECODED, IGNORED, UNDECODABLE)
        assert result.ignored == (result.outcome == IGNORED), result
        assert len(result.readings) + len(result.problems) <= MAX_READINGS + 1
        for reading in result.readings:
            why = unstorable(reading)
            assert why is None, (topic, payload[:200], reading, why)
            assert reading.metric and "" not in reading.metric.split(".")
            assert reading.tags["device"].startswith("dev")
            assert all(k and v for k, v in reading.tags.items()), reading.tags
            reading.metric.encode("utf-8")
            for k, v in reading.tags.items():
                k.encode("utf-8")
                v.encode("utf-8")
        for reason, detail in result.problems:
            assert reason and detail
            detail.encode("utf-8")  # logged and shown in status as it is

    check()
