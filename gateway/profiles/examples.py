"""Run a profile's documented examples: each payload must give exactly its readings."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from gateway.config.schema import DeviceConfig
from gateway.profiles.decoder import Decoder
from gateway.profiles.devicetime import epoch_seconds, zone
from gateway.profiles.library import Profile, ProfileLibrary

BASE_TAGS = {"device", "gateway"}


def payload_bytes(payload: Any) -> bytes:
    """Examples give payloads as text, or as YAML data meaning its JSON form."""
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return json.dumps(payload).encode("utf-8")


def _matches(expected: Mapping[str, Any], reading: Any) -> bool:
    if reading.metric != expected["metric"]:
        return False
    if not math.isclose(reading.value, float(expected["value"]), rel_tol=1e-9, abs_tol=1e-9):
        return False
    for key in ("unit", "type"):
        if key in expected and getattr(reading, key) != expected[key]:
            return False
    if "ts" in expected and not math.isclose(reading.ts, _moment(expected["ts"]), rel_tol=0,
                                              abs_tol=1e-6):
        return False
    extra = {k: v for k, v in reading.tags.items() if k not in BASE_TAGS}
    return extra == {k: str(v) for k, v in (expected.get("tags") or {}).items()}


def _moment(value: Any) -> float:
    """An example's time: epoch seconds, or ISO 8601 text with an offset."""
    moment = epoch_seconds(value, zone("UTC"), float("inf"))
    if moment is None:
        raise ValueError(f"{value!r} is not a time (epoch seconds or ISO 8601 with an offset)")
    return moment


def check_examples(library: ProfileLibrary, profile: Profile) -> list[str]:
    """Every mismatch between a profile's examples and what the decoder makes of them."""
    failures = []
    for i, ex in enumerate(profile.spec.examples):
        where = f"{profile.name} example {i} ({ex.topic})"
        device = DeviceConfig(id="example", profile=profile.name, params=ex.params,
                              timezone=ex.timezone)
        problems = library.check_device(device, "params")
        if problems:
            failures.append(f"{where}: bad params: {'; '.join(map(str, problems))}")
            continue
        received = 0.0 if ex.received is None else _moment(ex.received)
        decoded = Decoder([device], library, gateway_name="gw").decode(
            ex.topic, payload_bytes(ex.payload), received, ex.source)
        if decoded.problems:
            failures.append(f"{where}: decode problems: {decoded.problems}")
        if ex.ignored != decoded.ignored:
            failures.append(f"{where}: ignored is {decoded.ignored}, expected {ex.ignored}")
        remaining = list(decoded.readings)
        for exp in ex.readings:
            hit = next((r for r in remaining if _matches(exp, r)), None)
            if hit is None:
                failures.append(f"{where}: no reading like {dict(exp)}")
            else:
                remaining.remove(hit)
        for extra in remaining:
            failures.append(f"{where}: unexpected reading {extra.metric}={extra.value} "
                            f"tags={extra.tags}")
    return failures
