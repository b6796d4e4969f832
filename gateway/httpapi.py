"""The local status endpoint: /metrics (Prometheus text), /status (JSON) and /health.

/health is for supervisors and load balancers: 200 while the process serves,
with `ready` and the reasons it is not; /health/ready answers 503 when the
gateway cannot do its job (not connected to the broker, store not writable,
ingest stopped), so a watchdog or a container runtime can act on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.ownmetrics import CATALOGUE
from gateway.stats import Stats

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


class StatusServer:
    """Serves the gateway's health on a local port."""

    def __init__(self, host: str, port: int, stats: Stats,
                 status: Callable[[], dict[str, Any]], extra: Callable[[], Extra],
                 health: Callable[[], list[str]]) -> None:
        self.host, self.port = host, port
        self.stats = stats
        self.status = status
        self.extra = extra
        self.health = health
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
        app.router.add_get("/health", self._health)
        app.router.add_get("/health/ready", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=prometheus_text(self.stats, self.extra()),
                            content_type="text/plain", charset="utf-8")

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(self.status(), indent=2),
                            content_type="application/json")

    def _health_body(self) -> tuple[bool, str]:
        problems = self.health()
        body = {"alive": True, "ready": not problems, "problems": problems}
        return not problems, json.dumps(body)

    async def _health(self, request: web.Request) -> web.Response:
        _, body = self._health_body()
        return web.Response(text=body, content_type="application/json")

    async def _ready(self, request: web.Request) -> web.Response:
        ready, body = self._health_body()
        return web.Response(text=body, status=200 if ready else 503,
                            content_type="application/json")
