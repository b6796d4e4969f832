"""The configuration reference and the list of device profiles, made from the code.

README.md holds their output between marker comments; a test checks it is
current, so the documented defaults cannot drift from the real ones.
`python -m gateway.config.reference` prints both.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from gateway.config.schema import Config, DeviceConfig
from gateway.config.validate import Bytes, Duration, Secret
from gateway.profiles.library import ProfileLibrary


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is Secret:
        return "secret"
    if tp is Bytes:
        return "size"
    if tp is Duration:
        return "duration"
    if origin is Literal:
        return " \\| ".join(str(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is not None and "Mapping" in str(origin):
        return "mapping"
    if dataclasses.is_dataclass(tp):
        return "section"
    return getattr(tp, "__name__", str(tp))


def _default(f: dataclasses.Field[Any]) -> str:
    if f.metadata.get("required"):
        return "**required**"
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        if dataclasses.is_dataclass(value):
            return "(section)"
    else:
        return "**required**"
    if isinstance(value, Secret):
        return "**required**" if not value else "(secret)"
    if isinstance(value, Bytes):
        return f"`{_size(value)}`"
    if isinstance(value, Duration):
        return "0 (none)" if not value else f"`{_duration(value)}`"
    if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
        return "<br>".join(_inline(v) for v in value)
    if isinstance(value, tuple) and value:
        return "`[" + ", ".join(map(str, value)) + "]`"
    if value is None:
        return "—"
    if isinstance(value, (dict, types.MappingProxyType)) and not value:
        return "{}"
    if isinstance(value, tuple) and not value:
        return "[]"
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return '`""`'
    return f"`{value}`"


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("GB", 1000**3), ("MB", 1000**2)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def _duration(seconds: float) -> str:
    for unit, factor in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= factor and seconds % factor == 0:
            return f"{int(seconds // factor)}{unit}"
    return f"{seconds:g}s"


def _inline(obj: Any) -> str:
    """A list entry's default as YAML flow: {older_than: 1h, bucket: 1m, ...}."""
    parts = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, Duration):
            text = _duration(value)
        elif isinstance(value, tuple):
            text = "[" + ", ".join(map(str, value)) + "]"
        else:
            text = str(value)
        parts.append(f"{f.name}: {text}")
    return "`{" + ", ".join(parts) + "}`"


def _table(cls: type, prefix: str, skip: tuple[str, ...] = ()) -> list[str]:
    hints = get_type_hints(cls)
    rows = []
    nested: list[tuple[type, str]] = []
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp = hints[f.name]
        inner = [a for a in get_args(tp) if dataclasses.is_dataclass(a)] or (
            [tp] if dataclasses.is_dataclass(tp) else [])
        meaning = f.metadata.get("doc", "").replace("<", "&lt;").replace("|", "\\|")
        rows.append(f"| `{prefix}{f.name}` | {_type_name(tp)} | {_default(f)} | {meaning} |")
        items = [a for a in get_args(tp) if dataclasses.is_dataclass(a)] \
            if get_origin(tp) in (list, tuple) else []
        if inner and get_origin(tp) not in (list, tuple):
            nested.append((inner[0], f"{prefix}{f.name}."))  # type: ignore[arg-type]
        elif items:
            nested.append((items[0], f"{prefix}{f.name}[]."))  # type: ignore[arg-type]
    out = ["| key | type | default | meaning |", "|---|---|---|---|", *rows]
    for sub, sub_prefix in nested:
        out += ["", *_table(sub, sub_prefix)]
    return out


def config_reference() -> str:
    lines = ["Every key, its type and default. Unknown keys are errors.", ""]
    for section in ("gateway", "mqtt", "store"):
        lines += [f"#### `{section}`", "", *_table(get_type_hints(Config)[section],
                                                    f"{section}."), ""]
    lines += ["#### `devices[]`", "",
              ("Each device names a profile; the profile's parameters (below) sit beside "
              "these keys."), "", *_table(DeviceConfig, "", skip=("params",)), ""]
    from gateway.sinks.registry import SINKS

    for kind, entry in SINKS.items():
        cls = entry.config
        lines += [f"#### `sinks[]` with `type: {kind}`", "", *_table(cls, "", skip=("type",)),
                  ""]
    from gateway.sources.registry import SOURCES

    for kind, source in SOURCES.items():
        lines += [f"#### `sources[]` with `type: {kind}`", "",
                  *_table(source.config, "", skip=("type",)), ""]
    from gateway.monitors.config import MONITORS
    from gateway.notify.config import AlertingSection, Person

    for kind, monitor in MONITORS.items():
        lines += [f"#### `monitors[]` with `type: {kind}`", "",
                  *_table(monitor, "", skip=("type",)), ""]
    from gateway.config.checks import CheckConfig
    from gateway.config.schema import TripsSection

    lines += ["#### `checks[]`", "", *_table(CheckConfig, ""), ""]
    lines += ["#### `trips`", "", *_table(TripsSection, "trips."), ""]
    lines += ["#### `people[]`", "", *_table(Person, ""), ""]
    lines += ["#### `alerting`", "", *_table(AlertingSection, "alerting."), ""]
    return "\n".join(lines).rstrip() + "\n"


def profile_list(library: ProfileLibrary | None = None) -> str:
    library = library or ProfileLibrary.builtin()
    lines = ["| profile | parameters | what it reads |", "|---|---|---|"]
    for name in sorted(library.profiles):
        spec = library.profiles[name].spec
        params = ", ".join(
            f"`{k}`" + ("" if p.required else " (optional)" if p.default in ("", None)
                        else f" (default `{p.default}`)")
            for k, p in spec.params.items())
        desc = " ".join(spec.description.split()).replace("<", "&lt;").replace("|", "\\|")
        lines.append(f"| `{name}` | {params} | {desc} |")
    return "\n".join(lines) + "\n"


def value_maps(library: ProfileLibrary | None = None) -> str:
    """Every value map the shipped profiles use: the numbers stored and the words they mean."""
    from gateway.profiles.codes import coded_metrics, meanings

    library = library or ProfileLibrary.builtin()
    used: dict[str, tuple[Any, set[str]]] = {}
    for name in sorted(library.profiles):
        profile = library.profiles[name]
        for metric, (map_name, vmap) in coded_metrics(profile, {}).items():
            if map_name != "inline":
                used.setdefault(map_name, (vmap, set()))[1].add(metric)
    lines = ["| map | stored value = payload word(s) | metrics |", "|---|---|---|"]
    for map_name, (vmap, metrics) in sorted(used.items()):
        codes = ", ".join(f"{number:g} = {words}" for number, words in
                          sorted(meanings(vmap).items()))
        lines.append(f"| `{map_name}` | {codes} | "
                     + ", ".join(f"`{m}`" for m in sorted(metrics)) + " |")
    return "\n".join(lines) + "\n"


def own_metrics() -> str:
    """The gateway's own metrics (gateway.ownmetrics), as a table."""
    from gateway.health.ownmetrics import CATALOGUE

    lines = ["| name | kind | labels | unit | meaning | on /metrics |", "|---|---|---|---|---|---|"]
    for m in CATALOGUE.values():
        labels = ", ".join(f"`{label}`" for label in m.labels) or "—"
        lines.append(f"| `{m.name}` | {m.kind} | {labels} | {m.unit or '—'} | {m.help} | "
                     f"`{m.prometheus}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(config_reference())
    print(profile_list())
    print(value_maps())
