"""The local status endpoint: /metrics (Prometheus text), /status (JSON) and /health.

/health is for supervisors and load balancers: 200 while the process serves,
with `ready` and the reasons it is not; /health/ready answers 503 when the
gateway cannot do its job (not connected to the broker, store not writable,
ingest stopped), so a watchdog or a container runtime can act on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.health.prometheus import Extra, prometheus_text
from gateway.health.stats import Stats


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
