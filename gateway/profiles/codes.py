"""What a coded value means: the words a value map turns into numbers, read backwards.

A thermostat's mode arrives as `heat` and is stored as 3 (map `climate_mode`),
a relay's `ON` as 1. The number is what every sink can graph; a person reading
`climate.mode 3` needs the key. `gateway decode` shows it beside each reading
and the README lists every map (`gateway.config.reference`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.profiles.library import Profile, field_map
from gateway.profiles.schema import FieldSpec
from gateway.profiles.topics import fill_params


def meanings(vmap: Mapping[str, float]) -> dict[float, str]:
    """number -> the words for it, e.g. {1.0: 'ON/true/1', 0.0: 'OFF/false/0'}."""
    out: dict[float, list[str]] = {}
    for word, number in vmap.items():
        out.setdefault(float(number), []).append(str(word))
    return {number: "/".join(words) for number, words in out.items()}


def coded_metrics(profile: Profile,
                  params: Mapping[str, Any]) -> dict[str, tuple[str, Mapping[str, float]]]:
    """metric -> (map name, map) for every field of the profile that reads a value map.

    Metric names are filled in with the device's parameters; a name that still holds
    a capture (`switch.{name}`) is left out, as no single reading is named so.
    """
    values = {k: params.get(k, p.default) for k, p in profile.spec.params.items()}
    scalars = {k: v for k, v in values.items() if isinstance(v, (str, int, float))}
    out: dict[str, tuple[str, Mapping[str, float]]] = {}
    for rule in profile.spec.messages:
        specs: list[FieldSpec] = profile.expand(rule.fields)
        if rule.fields_param:
            for data in field_map(values.get(rule.fields_param)):
                if isinstance(data.get("map"), str):
                    specs.append(FieldSpec(path=data["path"], metric=str(data.get("metric", "")),
                                           quantity=str(data.get("quantity", "")),
                                           map=data["map"]))
        for spec in specs:
            if spec.map is None:
                continue
            q = profile.quantities.get(spec.quantity) if spec.quantity else None
            metric = fill_params(spec.metric or (q.metric if q else ""), scalars)
            if not metric or "{" in metric:
                continue
            if isinstance(spec.map, str):
                vmap = profile.maps.get(spec.map)
                if vmap is not None:
                    out.setdefault(metric, (spec.map, vmap))
            else:
                out.setdefault(metric, ("inline", spec.map))
    return out
