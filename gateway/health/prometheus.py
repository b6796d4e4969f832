"""The gateway's own metrics as Prometheus text (/metrics): HELP and TYPE from the
catalogue (gateway.health.ownmetrics), counters as `_total`."""

from __future__ import annotations

import re

from gateway.health.ownmetrics import CATALOGUE
from gateway.health.stats import Stats

_UNSAFE = re.compile(r"[^a-zA-Z0-9_:]")

Extra = list[tuple[str, dict[str, str], float]]


def prometheus_text(stats: Stats, extra: Extra) -> str:
    """Every own metric with HELP and TYPE (see gateway.ownmetrics); counters as `_total`."""
    counters, gauges = stats.snapshot()
    families: dict[str, tuple[str, str, list[tuple[dict[str, str], float]]]] = {}

    def add(raw: str, kind: str, series: list[tuple[dict[str, str], float]]) -> None:
        known = CATALOGUE.get(raw)
        name = known.prometheus if known else _UNSAFE.sub("_", raw) + (
            "_total" if kind == "counter" else "")
        text = known.help if known else "(not documented)"
        if known and known.unit:
            text += f" ({known.unit})"
        families.setdefault(name, (kind, text, []))[2].extend(series)

    for raw, values in counters.items():
        add(raw, "counter", [(dict(labels), v) for labels, v in values.items()])
    for raw, values in gauges.items():
        add(raw, "gauge", [(dict(labels), v) for labels, v in values.items()])
    for raw, labels, value in extra:
        add(raw, "gauge", [(labels, value)])
    lines: list[str] = []
    for name, (kind, text, series) in sorted(families.items()):
        lines.append(f"# HELP {name} {_help(text)}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in series:
            if labels:
                inner = ",".join(f'{_UNSAFE.sub("_", k)}="{_escape(v)}"'
                                 for k, v in sorted(labels.items()))
                lines.append(f"{name}{{{inner}}} {value:g}")
            else:
                lines.append(f"{name} {value:g}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
