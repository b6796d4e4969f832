"""Find, load and check device profiles and the fragments they include."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.config.schema import Config, DeviceConfig
from gateway.config.validate import Problem, build
from gateway.profiles.schema import FieldSpec, Fragment, ProfileSpec, Quantity

#: the built-in profiles: a link to the repository's devices/ in a checkout, real copies
#: in a wheel (pyproject.toml's package data)
BUILTIN_DIR = (Path(__file__).parent / "builtin").resolve()
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Profile:
    """A profile with its fragments merged in: everything a decoder needs."""

    spec: ProfileSpec
    source: str
    quantities: dict[str, Quantity] = field(default_factory=dict)
    maps: dict[str, Mapping[str, float]] = field(default_factory=dict)
    field_groups: dict[str, tuple[FieldSpec, ...]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.profile

    def expand(self, specs: Iterable[FieldSpec]) -> list[FieldSpec]:
        """Replace `use:` entries by the fields of the named group."""
        out: list[FieldSpec] = []
        for spec in specs:
            if spec.use:
                out.extend(self.expand(self.field_groups.get(spec.use, ())))
            else:
                out.append(spec)
        return out


def _read_yaml(file: Path) -> tuple[Any, list[Problem]]:
    try:
        return yaml.safe_load(file.read_text(encoding="utf-8")), []
    except (OSError, yaml.YAMLError) as exc:
        return None, [Problem(str(file), f"cannot read: {exc}")]


class ProfileLibrary:
    """All profiles found in the configured folders (first folder wins a name)."""

    def __init__(self, dirs: Iterable[Path]) -> None:
        self.dirs = [Path(d) for d in dirs]
        self.problems: list[Problem] = []
        self.fragments: dict[str, Fragment] = {}
        self.profiles: dict[str, Profile] = {}
        for d in reversed(self.dirs):  # later folders are overridden by earlier ones
            self._load_dir(d)
        for profile in self.profiles.values():
            self._resolve(profile)

    @classmethod
    def for_config(cls, config: Config | None, base_dir: Path = Path(".")) -> ProfileLibrary:
        extra = config.gateway.profiles_dirs if config else ()
        return cls([*(base_dir / d for d in extra), BUILTIN_DIR])

    @classmethod
    def builtin(cls) -> ProfileLibrary:
        return cls([BUILTIN_DIR])

    def _load_dir(self, folder: Path) -> None:
        if not folder.is_dir():
            self.problems.append(Problem(str(folder), "profile folder does not exist"))
            return
        for file in sorted((folder / "fragments").glob("*.yaml")):
            data, problems = _read_yaml(file)
            frag, more = build(Fragment, data, file.name) if not problems else (None, [])
            self.problems.extend(problems + more)
            if frag is not None:
                self.fragments[frag.fragment] = frag
        for file in sorted(folder.glob("*.yaml")):
            data, problems = _read_yaml(file)
            spec, more = build(ProfileSpec, data, file.name) if not problems else (None, [])
            self.problems.extend(problems + more)
            if spec is not None:
                self.profiles[spec.profile] = Profile(spec, str(file))

    def _resolve(self, profile: Profile) -> None:
        spec = profile.spec
        for name in (*spec.include, None):
            part = spec if name is None else self.fragments.get(name)
            if part is None:
                self.problems.append(Problem(f"{profile.source}: include",
                                             f"no fragment named {name!r}"))
                continue
            profile.quantities.update(part.quantities)
            profile.maps.update(part.maps)
            profile.field_groups.update(part.field_groups)
        for i, rule in enumerate(spec.messages):
            where = f"{profile.source}: messages[{i}]"
            for name in _PLACEHOLDER.findall(rule.topic):
                if name in spec.params and not spec.params[name].required \
                        and spec.params[name].default is None:
                    self.problems.append(Problem(where, f"optional param {name!r} in a topic "
                                                        "needs a default"))
            if rule.fields_param and rule.fields_param not in spec.params:
                self.problems.append(Problem(where, f"fields_param {rule.fields_param!r} "
                                                    "is not one of the profile's params"))
            for spec_ in rule.fields:
                self._check_field(profile, spec_, where)
        for name, group in profile.field_groups.items():
            for spec_ in group:
                self._check_field(profile, spec_, f"{profile.source}: field_groups.{name}")

    def _check_field(self, profile: Profile, spec: FieldSpec, where: str) -> None:
        for problem in field_problems(profile, spec):
            self.problems.append(Problem(where, problem))

    def get(self, name: str) -> Profile | None:
        return self.profiles.get(name)

    def check_device(self, device: DeviceConfig, path: str) -> list[Problem]:
        """Problems with one device's profile and parameters, each with its key path."""
        profile = self.profiles.get(device.profile)
        if profile is None:
            known = ", ".join(sorted(self.profiles)) or "none found"
            return [Problem(f"{path}.profile", f"unknown profile {device.profile!r}; "
                                               f"known profiles: {known}")]
        # Tags go on every reading as they are: text the store cannot encode would
        # fail each batch they are in.
        bad_tags = [Problem(f"{path}.tags.{k}", f"{v!r} holds a lone UTF-16 surrogate, "
                                                 "which is not text")
                    for k, v in device.tags.items()
                    if isinstance(v, str) and (_not_text(v) or _not_text(str(k)))]
        return bad_tags + param_problems(profile, device.params, path)


def metric_names(profile: Profile, params: Mapping[str, Any]) -> list[str]:
    """The metric names a device of this profile with these parameters can produce, as
    templates: `{name}` stands for a part the message gives (a topic level, a key).
    `device.online` for a profile with a last will."""
    declared = profile.spec.params
    values = {k: params.get(k, ps.default) for k, ps in declared.items()}
    scalars = {k: v for k, v in values.items() if isinstance(v, (str, int, float))}
    out: list[str] = []
    for rule in profile.spec.messages:
        if rule.ignore:
            continue
        if rule.availability is not None:
            out.append("device.online")
        specs = list(profile.expand(rule.fields))
        if rule.fields_param and isinstance(params.get(rule.fields_param), dict):
            for data in field_map(params[rule.fields_param]):
                spec, more = build(FieldSpec, data)
                if spec is not None and not more:
                    specs.append(spec)
        for spec in specs:
            q = profile.quantities.get(spec.quantity) if spec.quantity else None
            template = spec.metric or (q.metric if q else "")
            if template:
                out.append(_fill(template, scalars))
    return list(dict.fromkeys(out))


def metric_matches(template: str, metric: str) -> bool:
    """Whether a metric name fits a template from metric_names."""
    parts = _PLACEHOLDER.split(template)
    pattern = "".join(re.escape(p) if i % 2 == 0 else ".+" for i, p in enumerate(parts))
    return re.fullmatch(pattern, metric) is not None


def field_problems(profile: Profile, spec: FieldSpec) -> list[str]:
    out = []
    if spec.use and spec.use not in profile.field_groups:
        out.append(f"no field group named {spec.use!r}")
    if spec.quantity and spec.quantity not in profile.quantities:
        out.append(f"no quantity named {spec.quantity!r}")
    if isinstance(spec.map, str) and spec.map not in profile.maps:
        out.append(f"no value map named {spec.map!r}")
    return out


def param_problems(profile: Profile, params: Mapping[str, Any], path: str) -> list[Problem]:
    problems = []
    declared = profile.spec.params
    for key in params:
        if key not in declared:
            own = [f for f in DeviceConfig.__dataclass_fields__ if f != "params"]
            allowed = ", ".join([*own, *declared])
            problems.append(Problem(f"{path}.{key}", f"unknown key for profile "
                                                     f"{profile.name!r}; allowed: {allowed}"))
    for key, ps in declared.items():
        if key not in params and ps.required:
            problems.append(Problem(f"{path}.{key}", f"is required by profile {profile.name!r}"
                                                     + (f" ({ps.description})" if ps.description
                                                        else "")))
    for rule in profile.spec.messages:
        if rule.fields_param and rule.fields_param in params:
            problems.extend(_field_map_problems(profile, params[rule.fields_param],
                                                f"{path}.{rule.fields_param}"))
    for key, value in params.items():
        if key in declared and not isinstance(value, (str, int, float, dict)):
            problems.append(Problem(f"{path}.{key}", "must be a string or a mapping"))
        elif isinstance(value, str) and _not_text(value):
            problems.append(Problem(f"{path}.{key}", f"{value!r} holds a lone UTF-16 "
                                                     "surrogate, which is not text"))
    values = {k: params.get(k, ps.default) for k, ps in declared.items()}
    # One problem per key is enough (a surrogate in state_metric is also a bad metric).
    flagged = {p.path for p in problems}
    problems.extend(p for p in _metric_problems(profile, params, values, path)
                    if p.path not in flagged)
    seen = set()
    for rule in profile.spec.messages:
        used = [n for n in _PLACEHOLDER.findall(rule.topic) if n in params]
        filled = _PLACEHOLDER.sub(
            lambda m: str(values[m[1]]) if values.get(m[1]) is not None else m[0], rule.topic)
        for problem in _topic_problems(filled) if used else ():
            if problem not in seen:
                seen.add(problem)
                problems.append(Problem(f"{path}.{used[0]}", problem))
    return problems


def _not_text(value: str) -> bool:
    """A string no store or sink can encode (a lone surrogate, e.g. from \\ud800 in YAML)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _metric_problems(profile: Profile, params: Mapping[str, Any], values: Mapping[str, Any],
                     path: str) -> list[Problem]:
    """Metric names the device's parameters make that could not work at decode time.

    A parameter filled into a metric (zigbee2mqtt's state_metric, generic-json's
    field map) must leave a dotted name whose `{name}`s are all captures the message
    gives: a level of the topic, an `each:` key, or `{key}` for a '*' field. Found
    here, `gateway check` names the key; found at decode time, it was an error on
    every message.
    """
    problems: list[Problem] = []
    scalars = {k: v for k, v in values.items() if isinstance(v, (str, int, float))}
    seen: set[tuple[str, str]] = set()  # (key, metric): say it once, not per message
    for rule in profile.spec.messages:
        if rule.ignore:
            continue
        captures = set(_PLACEHOLDER.findall(_fill(rule.topic, scalars)))
        if rule.each is not None:
            captures.update(_PLACEHOLDER.findall(rule.each.key))
            if rule.each.family:
                captures.add("family")
        specs = [(s, "") for s in profile.expand(rule.fields)]
        if rule.fields_param and isinstance(params.get(rule.fields_param), dict):
            for data in field_map(params[rule.fields_param]):
                spec, more = build(FieldSpec, data)
                if spec is not None and not more:
                    specs.append((spec, f"{rule.fields_param}.{data['path']}"))
        for spec, from_param in specs:
            q = profile.quantities.get(spec.quantity) if spec.quantity else None
            template = spec.metric or (q.metric if q else "")
            if not template:
                continue
            used = [n for n in _PLACEHOLDER.findall(template) if n in scalars]
            where = (f"{path}.{used[0]}" if used and used[0] in params
                     else f"{path}.{from_param}" if from_param else path)
            available = captures | ({"key"} if spec.path == "*" else set())
            metric = _fill(template, scalars)
            if (where, metric) in seen:
                continue
            seen.add((where, metric))
            problems.extend(Problem(where, problem) for problem in
                            _metric_name_problems(metric, available, _fill(rule.topic, scalars)))
    return problems


def _fill(template: str, params: Mapping[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: str(params[m[1]]) if m[1] in params else m[0], template)


def _metric_name_problems(metric: str, available: set[str], topic: str) -> list[str]:
    """What is wrong with a metric name template once parameters are filled in."""
    out = []
    literal = _PLACEHOLDER.sub("x", metric)
    if "{" in literal or "}" in literal:
        out.append(f"metric {metric!r}: {{ and }} may only enclose a capture name such as "
                   "{channel}")
    for name in _PLACEHOLDER.findall(metric):
        if name not in available:
            known = ", ".join("{" + n + "}" for n in sorted(available)) or "none"
            out.append(f"metric {metric!r} uses {{{name}}}, which is not a capture of topic "
                       f"{topic!r} (captures there: {known})")
    if "" in literal.split("."):
        out.append(f"metric {metric!r}: a metric name is dotted words, with no empty part "
                   "(e.g. light.state)")
    if _not_text(metric):
        out.append(f"metric {metric!r} holds a lone UTF-16 surrogate, which is not text")
    return out


def _topic_problems(topic: str) -> list[str]:
    """What makes a topic pattern (after parameters are filled in) unusable."""
    out = []
    levels = topic.split("/")
    for i, level in enumerate(levels):
        bad_plus = "+" in level and level != "+"
        bad_hash = "#" in level and (level != "#" or i < len(levels) - 1)
        if bad_plus or bad_hash:
            out.append(f"topic {topic!r}: + must be a whole level and # the whole last level "
                       "(e.g. sensors/+/state, sensors/#)")
            break
    names = _PLACEHOLDER.findall(topic)
    for name in sorted({n for n in names if names.count(n) > 1}):
        out.append(f"topic {topic!r}: {{{name}}} is captured twice; give each capture its own name")
    return out


def field_map(value: Any) -> list[dict[str, Any]]:
    """A device's field map ({path: metric} or {path: {metric: ..}}) as FieldSpec data."""
    out: list[dict[str, Any]] = []
    for path, spec in (value or {}).items():
        if isinstance(spec, str):
            out.append({"path": str(path), "metric": spec})
        elif isinstance(spec, dict):
            out.append({"path": str(path), **spec})
        else:
            out.append({"path": str(path), "metric": spec})  # reported as a wrong type
    return out


def _field_map_problems(profile: Profile, value: Any, path: str) -> list[Problem]:
    if not isinstance(value, dict) or not value:
        return [Problem(path, "must be a mapping of payload path to metric "
                              "(e.g. {temp: room.temperature})")]
    problems = []
    for data in field_map(value):
        spec, more = build(FieldSpec, data, f"{path}.{data['path']}")
        problems.extend(more)
        if spec is not None:
            problems.extend(Problem(f"{path}.{data['path']}", p)
                            for p in field_problems(profile, spec))
    return problems
