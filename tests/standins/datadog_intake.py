"""A stand-in for the Datadog metrics intake (``/api/v2/series``, ``/api/v1/series``).

Allowed by DESIGN.md only because no real Datadog can run here; it does what the
documented intake does and no more:

* ``DD-API-KEY`` must be the configured key, else 403 ``{"errors": ["Forbidden"]}``.
* ``Content-Encoding`` deflate / gzip (v1, v2), zstd1 (v2, only if ``zstandard`` is
  importable), or none. Compressed body over 512000 bytes or decompressed over
  5242880 bytes: 413. Malformed JSON or a body the official ``datadog-api-client``
  models reject: 400 ``{"errors": [...]}``. Accepted: 202 (v2 ``{"errors": []}``,
  v1 ``{"status": "ok"}``, the two ``IntakePayloadAccepted`` models).
* Points are accepted by the HTTP call but NOT stored when their timestamp is more
  than 3600 s in the past (unless the metric is in ``historical_metrics``, as with
  Datadog's per-metric "historical metrics ingestion") or more than 600 s in the
  future; they are recorded in :attr:`DatadogIntake.dropped`.
* One point per series (metric, sorted tags, resources/host) per second: a later
  point for the same second replaces the earlier one, counted in
  :attr:`DatadogIntake.overwritten_points`.

Rate limiting: Datadog documents that metric submission is not rate limited, but its
API answers 429 with ``X-RateLimit-Limit/-Period/-Remaining/-Reset/-Name`` (Reset:
seconds until the window resets); it does not document ``Retry-After``. The
official client's retry logic reads ``X-Ratelimit-Reset``. So ``fail_next(429)``
sends those headers by default; pass ``headers`` to send others.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Self

from aiohttp import web
from programs.ports import LOOPBACK, free_port

from .datadog_payload import (
    PayloadError,
    SubmittedPoint,
    decompress,
    parse_json,
    points_v1,
    points_v2,
    series_count,
    validate,
)

MAX_AGE_SECONDS = 3600
MAX_FUTURE_SECONDS = 600

SeriesKey = tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]]


@dataclass
class RequestRecord:
    """What one request to the intake looked like and how it was answered."""

    path: str
    status: int
    headers: dict[str, str]
    raw_size: int
    decompressed_size: int | None = None
    series: int = 0
    points: int = 0
    errors: list[str] = field(default_factory=list)
    received_at: float = 0.0


@dataclass(frozen=True)
class DroppedPoint:
    """A point the intake accepted over HTTP but did not store, and why."""

    point: SubmittedPoint
    reason: str  # "too_old" | "too_far_in_future" | "null_value"


@dataclass
class _Fault:
    status: int | None  # None: no error status, only a delay
    headers: dict[str, str]
    body: bytes | None
    delay: float = 0.0


class DatadogIntake:
    """Datadog metrics intake stand-in: an aiohttp server in a background thread.

    ``url`` is the site base (``http://127.0.0.1:<port>``); the gateway posts to
    ``url + "/api/v2/series"``. ``clock`` is the intake's notion of "now" for the
    timestamp window (default ``time.time``); :meth:`set_time` freezes it.
    """

    def __init__(
        self,
        api_key: str = "test-dd-api-key",
        *,
        historical_metrics: set[str] | None = None,
        clock: Callable[[], float] = time.time,
        port: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.historical_metrics: set[str] = set(historical_metrics or ())
        self.clock = clock
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.requests: list[RequestRecord] = []
        self.dropped: list[DroppedPoint] = []
        self.overwritten_points = 0
        self._store: dict[SeriesKey, dict[int, SubmittedPoint]] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- life cycle --------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Serve in a background thread; returns once the port is listening."""
        if self._thread is not None:
            raise RuntimeError("already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="datadog-intake", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=10)
        return self

    async def _serve(self) -> None:
        # Bodies over the limit must reach the handler to be answered 413 like Datadog.
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/v2/series", self._handle_v2)
        app.router.add_post("/api/v1/series", self._handle_v1)
        # auto_decompress=False: the handler must see the bytes on the wire to apply
        # the compressed-size limit, and decompress them itself within the limit.
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=0.5, auto_decompress=False
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    def close(self) -> None:
        """Stop serving and end the thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=10)
            except (OSError, RuntimeError, TimeoutError):
                pass  # stopping the loop below ends the server all the same
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- test controls -----------------------------------------------------------------
    def set_time(self, now: float | None) -> None:
        """Freeze the intake's clock at ``now`` (POSIX seconds); None: back to real time."""
        self.clock = time.time if now is None else (lambda: now)

    def fail_next(
        self,
        status: int,
        count: int = 1,
        headers: dict[str, str] | None = None,
        body: bytes | str | dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``count`` series requests with ``status`` without storing anything.

        Default body ``{"errors": [<reason>]}``; a 429 gets Datadog's rate-limit headers
        (``X-RateLimit-Reset: 2`` etc.) unless ``headers`` is given.
        """
        if headers is None:
            headers = _rate_limit_headers(reset=2) if status == 429 else {}
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        with self._lock:
            self._faults += [_Fault(status, dict(headers), body) for _ in range(count)]

    def hang_next(self, seconds: float, count: int = 1) -> None:
        """Delay the next ``count`` requests by ``seconds``, then handle them normally.

        As with a real server, a request the client gave up on may still be stored.
        """
        with self._lock:
            self._faults += [_Fault(None, {}, None, delay=seconds) for _ in range(count)]

    def reset(self) -> None:
        """Forget stored points, requests, drops, counters and pending faults."""
        with self._lock:
            self._store.clear()
            self.requests.clear()
            self.dropped.clear()
            self._faults.clear()
            self.overwritten_points = 0

    # -- what was received -------------------------------------------------------------
    @property
    def dropped_points(self) -> int:
        """Points accepted over HTTP but not stored (see :attr:`dropped`)."""
        return len(self.dropped)

    def points(self, metric: str) -> list[tuple[int, float, tuple[str, ...]]]:
        """Stored points of ``metric`` as ``(timestamp, value, sorted tags)``, oldest first.

        A host (v1 ``host`` or a v2 resource of type host) is shown as tag ``host:<name>``.
        """
        found = []
        with self._lock:
            for (name, tags, resources), by_second in self._store.items():
                if name != metric:
                    continue
                shown = tuple(sorted(tags + tuple(f"{t}:{n}" for t, n in resources)))
                for ts, point in by_second.items():
                    found.append((ts, float(point.value or 0.0), shown))
        return sorted(found)

    def series(self) -> list[dict[str, Any]]:
        """Every stored series: metric, tags, resources, type and its points."""
        with self._lock:
            return [
                {
                    "metric": name,
                    "tags": list(tags),
                    "resources": [{"type": t, "name": n} for t, n in resources],
                    "type": next(iter(by_second.values())).type,
                    "points": sorted((ts, p.value) for ts, p in by_second.items()),
                }
                for (name, tags, resources), by_second in self._store.items()
            ]

    def stored_point_count(self) -> int:
        with self._lock:
            return sum(len(by_second) for by_second in self._store.values())

    # -- HTTP handlers -----------------------------------------------------------------
    async def _handle_v2(self, request: web.Request) -> web.Response:
        return await self._handle(request, "v2")

    async def _handle_v1(self, request: web.Request) -> web.Response:
        return await self._handle(request, "v1")

    async def _handle(self, request: web.Request, version: str) -> web.Response:
        raw = await request.read()
        record = RequestRecord(
            path=request.path,
            status=0,
            headers=dict(request.headers),
            raw_size=len(raw),
            received_at=time.time(),
        )
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            body = fault.body
            if body is None:
                body = json.dumps({"errors": [_reason(fault.status)]}).encode()
            record.errors = [f"injected {fault.status}"]
            return self._answer(record, fault.status, body, fault.headers)

        if request.headers.get("DD-API-KEY") != self.api_key:
            return self._answer_json(record, 403, {"errors": ["Forbidden"]})
        try:
            body = decompress(raw, request.headers.get("Content-Encoding"), version)
            record.decompressed_size = len(body)
            document = parse_json(body)
            record.series = series_count(document)
            validate(document, version)
        except PayloadError as exc:
            record.errors = exc.errors
            return self._answer_json(record, exc.status, {"errors": exc.errors})

        submitted = points_v2(document) if version == "v2" else points_v1(document)
        record.points = len(submitted)
        record.status = 202
        self._keep(submitted, record)
        accepted: dict[str, Any] = {"errors": []} if version == "v2" else {"status": "ok"}
        return self._respond(202, json.dumps(accepted).encode(), {})

    def _keep(self, submitted: list[SubmittedPoint], record: RequestRecord) -> None:
        """Store the points and record the request in one step, so a reader never
        sees the points of a request that is not yet in `requests`."""
        now = self.clock()
        with self._lock:
            self.requests.append(record)
            for point in submitted:
                reason = None
                if point.value is None:
                    reason = "null_value"
                elif point.timestamp > now + MAX_FUTURE_SECONDS:
                    reason = "too_far_in_future"
                elif (
                    point.timestamp < now - MAX_AGE_SECONDS
                    and point.metric not in self.historical_metrics
                ):
                    reason = "too_old"
                if reason is not None:
                    self.dropped.append(DroppedPoint(point, reason))
                    continue
                key: SeriesKey = (point.metric, point.tags, point.resources)
                by_second = self._store.setdefault(key, {})
                if point.timestamp in by_second:
                    self.overwritten_points += 1
                by_second[point.timestamp] = point

    def _answer_json(self, record: RequestRecord, status: int, payload: Any) -> web.Response:
        return self._answer(record, status, json.dumps(payload).encode(), {})

    def _answer(
        self, record: RequestRecord, status: int, body: bytes, headers: dict[str, str]
    ) -> web.Response:
        record.status = status
        with self._lock:
            self.requests.append(record)
        return self._respond(status, body, headers)

    @staticmethod
    def _respond(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
        headers = dict(headers)
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        return web.Response(status=status, body=body, headers=headers)


def _rate_limit_headers(reset: int) -> dict[str, str]:
    """The headers Datadog's API documents on rate-limited answers."""
    return {
        "X-RateLimit-Limit": "100",
        "X-RateLimit-Period": "10",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset),
        "X-RateLimit-Name": "metrics_submission",
    }


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
