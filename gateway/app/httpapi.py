"""The local status endpoint: /metrics (Prometheus text), /status (JSON) and /health.

POST /alerts/<id>/ack (with `Authorization: Bearer <alerting.ack_token>` and
optionally `{"by": "ann"}`) acknowledges an alert, as `gateway alerts ack` does;
without a token configured that endpoint is off.

/health is for supervisors and load balancers: 200 while the process serves,
with `ready` and the reasons it is not; /health/ready answers 503 when the
gateway cannot do its job (not connected to the broker, store not writable,
ingest stopped), so a watchdog or a container runtime can act on it.
"""

from __future__ import annotations

import asyncio
import hmac
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
                 health: Callable[[], list[str]],
                 ack: Callable[[int, str, str], str] | None = None,
                 ack_token: str | None = None) -> None:
        self.host, self.port = host, port
        self.ack = ack
        self.ack_token = ack_token
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
        app.router.add_post("/alerts/{id}/ack", self._ack)
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

    async def _ack(self, request: web.Request) -> web.Response:
        if self.ack is None:
            return web.json_response({"error": "no monitors are configured"}, status=404)
        if not self.ack_token:
            return web.json_response({"error": "acknowledging over HTTP is off: set "
                                               "alerting.ack_token"}, status=404)
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self.ack_token.encode()):
            return web.json_response({"error": "wrong or missing bearer token"}, status=401)
        try:
            alert = int(request.match_info["id"])
            body = await request.json() if request.can_read_body else {}
            by = str(body.get("by") or "http") if isinstance(body, dict) else "http"
        except (ValueError, json.JSONDecodeError):
            return web.json_response({"error": "expected /alerts/<number>/ack and an "
                                               "optional JSON body {\"by\": NAME}"},
                                     status=400)
        said = await asyncio.to_thread(self.ack, alert, by, "http")
        return web.json_response({"result": said},
                                 status=404 if said.startswith("no open alert") else 200)
