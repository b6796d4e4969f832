"""The local status endpoint: /metrics (Prometheus text) and /status (JSON)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.stats import Stats

_UNSAFE = re.compile(r"[^a-zA-Z0-9_:]")


def prometheus_text(stats: Stats, extra: list[tuple[str, dict[str, str], float]]) -> str:
    """Counters as `<name>_total`, gauges as is; dots become underscores."""
    counters, gauges = stats.snapshot()
    lines: list[str] = []

    def emit(name: str, kind: str, series: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in series:
            if labels:
                inner = ",".join(f'{_UNSAFE.sub("_", k)}="{_escape(v)}"'
                                 for k, v in sorted(labels.items()))
                lines.append(f"{name}{{{inner}}} {value:g}")
            else:
                lines.append(f"{name} {value:g}")

    for raw, series in sorted(counters.items()):
        emit(_UNSAFE.sub("_", raw) + "_total", "counter",
             [(dict(labels), v) for labels, v in series.items()])
    for raw, series in sorted(gauges.items()):
        emit(_UNSAFE.sub("_", raw), "gauge", [(dict(labels), v) for labels, v in series.items()])
    by_name: dict[str, list[tuple[dict[str, str], float]]] = {}
    for name, labels, value in extra:
        by_name.setdefault(_UNSAFE.sub("_", name), []).append((labels, value))
    for name, rows in sorted(by_name.items()):
        emit(name, "gauge", rows)
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class StatusServer:
    """Serves the gateway's health on a local port."""

    def __init__(self, host: str, port: int, stats: Stats,
                 status: Callable[[], dict[str, Any]],
                 extra: Callable[[], list[tuple[str, dict[str, str], float]]]) -> None:
        self.host, self.port = host, port
        self.stats = stats
        self.status = status
        self.extra = extra
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/status", self._status)
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
