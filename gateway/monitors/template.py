"""Notification messages in Datadog's template syntax, checked before they are needed.

Committee members who used Datadog write what they know:

    {{#is_alert}}The defibrillator socket has had no power for {{duration}}.{{/is_alert}}
    {{#is_recovery}}Power is back at {{device.name}}.{{/is_recovery}}
    {{^is_renotify}}First notice.{{/is_renotify}}

Sections `{{#name}}...{{/name}}` show their text when the condition holds and
`{{^name}}...{{/name}}` when it does not; variables `{{name}}` are replaced by
their value. `Template.parse` reports an unclosed or stray section, an unknown
section or an unknown variable with where it is, so `gateway check` names the
mistake rather than a notification at 3 a.m. showing it. A hand-written parser
rather than a Mustache library: Mustache renders an unknown variable as nothing
and cannot tell anyone it was unknown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

#: the conditions a section may test (Datadog's names)
SECTIONS = frozenset({
    "is_alert", "is_warning", "is_no_data", "is_recovery", "is_alert_recovery",
    "is_warning_recovery", "is_no_data_recovery", "is_renotify", "is_escalation",
})
#: variables every message may use; `tags.<key>` may name any tag
VARIABLES = frozenset({
    "value", "threshold", "warn_threshold", "status", "priority", "duration",
    "monitor.name", "device.name", "gateway.name", "gateway.ip", "last_triggered_at",
    "anomaly.lower", "anomaly.upper", "told", "group",
})

_TAG = re.compile(r"\{\{\s*([#^/]?)\s*([^{}\s]*)\s*\}\}")


class TemplateError(ValueError):
    """A mistake in a template, with where it is (1-based line and column)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Var:
    name: str


@dataclass(frozen=True)
class _Section:
    name: str
    inverted: bool
    body: tuple[_Node, ...]


_Node = _Text | _Var | _Section


def _where(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    return line, offset - (source.rfind("\n", 0, offset) + 1) + 1


def _known(name: str) -> bool:
    return name in VARIABLES or (name.startswith("tags.") and len(name) > len("tags."))


@dataclass(frozen=True)
class Template:
    source: str
    nodes: tuple[_Node, ...]

    @classmethod
    def parse(cls, source: str) -> Template:
        """The template, or TemplateError naming the first mistake and where it is."""
        stack: list[tuple[str, bool, int, list[_Node]]] = [("", False, 0, [])]
        pos = 0
        for match in _TAG.finditer(source):
            if match.start() > pos:
                stack[-1][3].append(_Text(source[pos:match.start()]))
            pos = match.end()
            sigil, name = match.groups()
            if not name:
                raise TemplateError("empty {{ }}", *_where(source, match.start()))
            if sigil in ("#", "^"):
                if name not in SECTIONS:
                    raise TemplateError(
                        f"unknown section {name!r}; known: {', '.join(sorted(SECTIONS))}",
                        *_where(source, match.start()))
                stack.append((name, sigil == "^", match.start(), []))
            elif sigil == "/":
                opened, inverted, _, body = stack[-1]
                if len(stack) == 1 or opened != name:
                    expected = f"{{{{/{opened}}}}}" if len(stack) > 1 else "no closing tag"
                    raise TemplateError(f"{{{{/{name}}}}} closes nothing open here "
                                        f"(expected {expected})",
                                        *_where(source, match.start()))
                stack.pop()
                stack[-1][3].append(_Section(name, inverted, tuple(body)))
            else:
                if not _known(name):
                    raise TemplateError(
                        f"unknown variable {name!r}; known: "
                        f"{', '.join(sorted(VARIABLES))}, tags.<key>",
                        *_where(source, match.start()))
                stack[-1][3].append(_Var(name))
        if len(stack) > 1:
            name, inverted, start, _ = stack[-1]
            sigil = "^" if inverted else "#"
            raise TemplateError(f"{{{{{sigil}{name}}}}} is never closed with {{{{/{name}}}}}",
                                *_where(source, start))
        if pos < len(source):
            stack[0][3].append(_Text(source[pos:]))
        return cls(source, tuple(stack[0][3]))

    def render(self, flags: frozenset[str], values: Mapping[str, str]) -> str:
        """The message: sections shown where `flags` says, variables from `values`
        (one missing, such as a tag this device lacks, renders as nothing)."""
        out: list[str] = []
        _render(self.nodes, flags, values, out)
        return "".join(out)


def _render(nodes: tuple[_Node, ...], flags: frozenset[str], values: Mapping[str, str],
            out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Var):
            out.append(values.get(node.name, ""))
        elif (node.name in flags) != node.inverted:
            _render(node.body, flags, values, out)
