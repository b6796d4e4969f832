"""MQTT topic patterns: device topic templates to subscription filters and regexes.

A template level may hold `{param}` (the device's parameter), `{name}` (a
capture that becomes a tag), `+` or `#`. `minimal_filters` drops filters that
another one covers, since a broker may deliver one copy per matching filter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def topic_pattern(template: str, params: Mapping[str, Any]) -> tuple[str, re.Pattern[str] | None]:
    """The MQTT subscription filter and, if it has captures/wildcards, a regex for it.

    Parameters are filled in first, so a parameter's value may itself span several
    levels and hold `+`, `#` or `{capture}` placeholders (generic-json's `topic`).
    """
    template = fill_params(template, params)
    filter_parts, regex_parts, dynamic = [], [], False
    for level in template.split("/"):
        pieces = PLACEHOLDER.split(level)
        lit_filter, rx = "", ""
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                lit_filter += piece
                rx += _level_regex(piece)
            else:
                rx += f"(?P<{piece}>[^/]*)"
        if "+" in lit_filter or "#" in lit_filter or len(pieces) > 1:
            dynamic = True
        filter_parts.append("+" if len(pieces) > 1 else lit_filter)
        regex_parts.append(rx)
    mqtt_filter = "/".join(filter_parts)
    if not dynamic:
        return mqtt_filter, None
    if len(regex_parts) > 1 and template.endswith("/#"):
        # `a/#` also matches `a` itself (MQTT 3.1.1, 4.7.1.2).
        return mqtt_filter, re.compile("^" + "/".join(regex_parts[:-1]) + "(?:/.*)?$")
    return mqtt_filter, re.compile("^" + "/".join(regex_parts) + "$")


def fill_params(template: str, params: Mapping[str, Any]) -> str:
    """Replace each `{name}` that is a device parameter by its value; leave captures."""
    return PLACEHOLDER.sub(lambda m: str(params[m[1]]) if m[1] in params else m[0], template)


def minimal_filters(filters: Iterable[str]) -> list[str]:
    """Distinct filters, dropping each one another filter covers.

    Only filters with a wildcard can cover others; they are indexed by their
    literal leading levels, so this stays linear in the number of filters.
    """
    distinct = list(dict.fromkeys(filters))
    wide: dict[tuple[str, ...], list[str]] = {}
    for g in distinct:
        levels = g.split("/")
        prefix = []
        for level in levels:
            if level in ("+", "#"):
                break
            prefix.append(level)
        if len(prefix) < len(levels):
            wide.setdefault(tuple(prefix), []).append(g)
    out = []
    for f in distinct:
        levels = f.split("/")
        covered = any(g != f and covers(g, f)
                      for k in range(len(levels) + 1)
                      for g in wide.get(tuple(levels[:k]), ()))
        if not covered:
            out.append(f)
    return out


def covers(wide: str, narrow: str) -> bool:
    """Whether every topic the filter `narrow` matches is matched by `wide`."""
    w, n = wide.split("/"), narrow.split("/")
    for i, level in enumerate(w):
        if level == "#":
            return True
        if i >= len(n) or n[i] == "#" or (level != "+" and level != n[i]):
            return False
    return len(w) == len(n)


def _level_regex(text: str) -> str:
    if text == "#":
        return ".*"
    return "".join("[^/]+" if ch == "+" else re.escape(ch) for ch in text)
