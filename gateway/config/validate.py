"""Turn plain YAML data into frozen config dataclasses, collecting every problem.

Each problem names its key path (`sinks[1].api_key`) and says what would be
right. Unknown keys are errors. Values of secret fields are never echoed.

Written here rather than taken from pydantic: pydantic adds about 20 MB of
resident memory on a Raspberry Pi, a quarter of the gateway's budget, for what
is a few hundred lines of typed dataclasses.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import re
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints


class Secret(str):
    """A string that must never be shown: its repr and str in messages are masked."""

    def __repr__(self) -> str:
        return "Secret('***')"

    @property
    def masked(self) -> str:
        return "***"


class Interpolated(str):
    """A string produced by `${VAR}` interpolation; may be read as a number or bool."""


class Bytes(int):
    """A size in bytes, written as a number or with a unit: 500MB, 1.5GiB, 64k."""


class Duration(float):
    """A length of time in seconds, written as a number or with a unit: 90s, 15m, 6h, 7d."""


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2,
               "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
_TIME_UNITS = {"": 1, "s": 1, "ms": 0.001, "m": 60, "min": 60, "h": 3600, "d": 86400,
               "w": 7 * 86400}
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value: Any) -> Bytes | None:
    """500MB -> 500000000; None when the text is not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Bytes(int(value)) if value >= 0 else None
    m = _AMOUNT.match(str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        return None
    return Bytes(int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]))


def parse_duration(value: Any) -> Duration | None:
    """15m -> 900.0; None when the text is not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Duration(float(value)) if value >= 0 else None
    m = _AMOUNT.match(str(value))
    if not m or m.group(2).lower() not in _TIME_UNITS:
        return None
    return Duration(float(m.group(1)) * _TIME_UNITS[m.group(2).lower()])


def duration_words(seconds: float) -> str:
    """90 -> '90 s', 5400 -> '90 min', 86400 * 3 -> '3.0 days': a span said in a log line."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@dataclasses.dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<top>'}: {self.message}"


class ConfigError(Exception):
    """Raised with every problem found, not just the first."""

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{where}{len(problems)} problem(s) in configuration:\n{lines}")


def doc(text: str, *, secret: bool = False, required: bool = False) -> dict[str, Any]:
    """Field metadata: a one-line description shown in errors and the reference.

    `required` marks a field that has a placeholder default only because dataclass
    inheritance needs one (its class's `check()` reports it when missing).
    """
    return {"doc": text, "secret": secret, "required": required}


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    if isinstance(value, Secret):
        return "***"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               Bytes: "a size (a number of bytes, or e.g. 500MB, 2GiB)",
               Duration: "a duration (seconds, or e.g. 90s, 15m, 6h, 7d)"}


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp in _TYPE_WORDS:
        return _TYPE_WORDS[tp]
    if tp is Secret:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        return "a list"
    if origin is dict or origin is collections.abc.Mapping:
        return "a mapping"
    if is_dataclass(tp):
        return "a mapping"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None))
    return getattr(tp, "__name__", str(tp))


class Validator:
    """Converts data to `tp`, appending to `self.problems` instead of raising."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def convert(self, value: Any, tp: Any, path: str, secret: bool = False) -> Any:
        origin = get_origin(tp)
        if tp is Any:
            return value
        if origin in (Union, types.UnionType):
            return self._union(value, tp, path, secret)
        if origin is Literal:
            allowed = get_args(tp)
            if (value in allowed and type(value) is type(allowed[0])) or (
                isinstance(value, str) and value in allowed
            ):
                return str(value) if isinstance(value, str) else value
            self.fail(path, f"must be {_describe(tp)}, got {_show(value)}")
            return None
        if is_dataclass(tp):
            variants = getattr(tp, "variants", None)
            if variants is not None and isinstance(value, dict):
                return self._variant(value, variants, path)
            return self.dataclass(value, tp, path)
        if origin is list or origin is tuple:
            (item_tp, *_) = get_args(tp)
            if not isinstance(value, list):
                self.fail(path, f"must be a list, got {_show(value)}")
                return ()
            return tuple(self.convert(v, item_tp, _join(path, i), secret)
                         for i, v in enumerate(value))
        if origin is dict or origin is collections.abc.Mapping:
            _, val_tp = get_args(tp)
            if not isinstance(value, dict):
                self.fail(path, f"must be a mapping, got {_show(value)}")
                return types.MappingProxyType({})
            out = {}
            for k, v in value.items():
                out[str(k)] = self.convert(v, val_tp, _join(path, str(k)), secret)
            return types.MappingProxyType(out)
        return self._scalar(value, tp, path, secret)

    def _variant(self, value: dict[str, Any], tagged: dict[str, Any], path: str) -> Any:
        """A mapping read as the class its `type` names (a registry's, or a union's)."""
        kind = value.get("type")
        if kind not in tagged:
            choices = ", ".join(repr(k) for k in tagged)
            if choices:
                self.fail(_join(path, "type"), f"must be one of {choices}, got {_show(kind)}")
            else:
                self.fail(_join(path, "type"), f"no kind is built in yet, got {_show(kind)}")
            return None
        return self.dataclass(value, tagged[kind], path)

    def _union(self, value: Any, tp: Any, path: str, secret: bool) -> Any:
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        candidates = [a for a in args if a is not type(None)]
        tagged = _by_type_tag(candidates)
        if tagged and isinstance(value, dict):
            return self._variant(value, tagged, path)
        for cand in candidates:
            trial = Validator()
            result = trial.convert(value, cand, path, secret)
            if not trial.problems:
                return result
        if len(candidates) == 1:
            return self.convert(value, candidates[0], path, secret)
        self.fail(path, f"must be {_describe(tp)}, got {_show(value)}")
        return None

    def _scalar(self, value: Any, tp: Any, path: str, secret: bool) -> Any:
        if tp is Secret or (tp is str and secret):
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                return Secret(str(value))
            self.fail(path, "must be a string")
            return None
        if tp is Bytes or tp is Duration:
            parsed = (parse_bytes if tp is Bytes else parse_duration)(value)
            if parsed is not None:
                return parsed
            self.fail(path, f"must be {_describe(tp)}, got {_show(value)}")
            return None
        if isinstance(value, Interpolated):
            value = _from_text(value, tp)
        if tp is bool:
            if isinstance(value, bool):
                return value
        elif tp is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif tp is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif tp is str:
            if isinstance(value, str):
                return str(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
        else:  # pragma: no cover - a programming error in the schema
            raise TypeError(f"unsupported config type {tp!r} at {path}")
        shown = "***" if secret else _show(value)
        self.fail(path, f"must be {_describe(tp)}, got {shown}")
        return None

    def dataclass(self, value: Any, tp: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, got {_show(value)}")
            return None
        hints = get_type_hints(tp)
        known = {f.name: f for f in fields(tp) if f.init}
        for key in value:
            if key not in known:
                near = _nearest(str(key), known)
                hint = f" (did you mean {near!r}?)" if near else ""
                allowed = ", ".join(sorted(known))
                self.fail(_join(path, str(key)), f"unknown key{hint}; allowed here: {allowed}")
        kwargs = {}
        for name, f in known.items():
            fpath = _join(path, name)
            if name in value:
                kwargs[name] = self.convert(
                    value[name], hints[name], fpath, bool(f.metadata.get("secret"))
                )
            elif f.default is MISSING and f.default_factory is MISSING:
                what = f.metadata.get("doc", "")
                self.fail(fpath, "is required" + (f" ({what})" if what else ""))
        try:
            obj = tp(**{k: v for k, v in kwargs.items() if v is not None or _optional(hints[k])})
        except (TypeError, ValueError):
            return None
        check = getattr(obj, "check", None)
        if callable(check):
            for key, message in check():
                self.fail(_join(path, key) if key else path, message)
        return obj


def _by_type_tag(candidates: list[Any]) -> dict[str, Any]:
    """For a union of dataclasses told apart by a `type: Literal[...]` field."""
    out: dict[str, Any] = {}
    for cand in candidates:
        if not is_dataclass(cand):
            return {}
        tag = get_type_hints(cand).get("type")
        if get_origin(tag) is not Literal:
            return {}
        for name in get_args(tag):
            out[name] = cand
    return out


def _optional(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


def _from_text(text: str, tp: Any) -> Any:
    low = text.strip().lower()
    if tp is bool and low in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return low in ("true", "yes", "on", "1")
    if tp is int:
        try:
            return int(low)
        except ValueError:
            return str(text)
    if tp is float:
        try:
            return float(low)
        except ValueError:
            return str(text)
    return str(text)


def _nearest(key: str, known: typing.Iterable[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(key, list(known), n=1, cutoff=0.7)
    return found[0] if found else None


def build(tp: type, data: Any, path: str = "") -> tuple[Any, list[Problem]]:
    """Convert `data` into `tp`; returns the object (possibly None) and every problem."""
    v = Validator()
    obj = v.convert(data, tp, path)
    return obj, v.problems
