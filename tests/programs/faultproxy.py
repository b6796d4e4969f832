"""An HTTP proxy in front of a real destination that can be told to fail like one.

Requests (method, path and query as sent, headers including ``Content-Encoding``,
the body as received) go to the upstream, VictoriaMetrics in the tests, and its
answer comes back as it was, until a fault is set:

``fault("500")``   answer 500 to every request;
``fault("429", retry_after=N)``  answer 429 with ``Retry-After: N``;
``fault("413", max_body=N)``  answer 413 to bodies over N bytes *as received*
                   (compressed, as a reverse proxy's ``client_max_body_size``
                   counts them) and forward the others;
``fault("403")``   answer 403, as a destination refusing the credentials;
``fault("400", refuse=b"text")``  answer 400 to requests whose body (gzip undone)
                   holds ``text``, as InfluxDB 2 refuses a whole write for one line
                   it cannot take, and forward the others;
``fault("hang")``  read the request and never answer it. Held requests are let
                   go when the fault is cleared or the proxy stops: their
                   connection is closed without an answer (the client has given
                   up long before), so none of them reaches the upstream.

``clear()`` passes everything through again. ``latency(seconds)`` delays every
answer, faults and pass-through alike, as a slow mobile link does. Every answer
is a real HTTP answer (status, reason, a short text body, Content-Length right).
The proxy records each request (:class:`ProxiedRequest`: when it arrived, its
size, how it was answered) so a test can count answers by status and check the
pauses between requests, e.g. that a client honoured ``Retry-After``.

The server is aiohttp in a thread of its own with its own event loop, on a free
loopback port; ``start()``, ``stop()`` (the port closes, as a server that went
away) and ``close()`` work like the other programs here.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
import zlib
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, Self

import aiohttp
from aiohttp import web
from yarl import URL

from .ports import LOOPBACK, free_port

FAULTS = ("500", "429", "413", "403", "400", "hang")

# Headers that belong to one connection, not to the message (RFC 9110 7.6.1), and
# the ones aiohttp writes itself from the body it sends.
_HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
    "Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
    "Host", "Content-Length"))


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy received and what became of it."""

    at: float  # time.monotonic() when the whole request had arrived
    method: str
    path: str  # path and query, as sent
    body_bytes: int  # body size as received (compressed if the client compressed it)
    content_encoding: str  # "" when none
    status: int | None = None  # the answer; None while held or when never answered
    forwarded: bool = False  # reached the upstream
    hung: bool = False  # held by the "hang" fault
    done_at: float | None = None  # time.monotonic() of the answer or of letting go


class FaultProxy:
    """A pass-through HTTP proxy to ``upstream`` with switchable faults (see module doc)."""

    def __init__(self, upstream: str, port: int | None = None, host: str = LOOPBACK,
                 upstream_timeout: float = 30.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.upstream_timeout = upstream_timeout
        self._lock = threading.Lock()
        self._records: list[ProxiedRequest] = []
        self._kind: str | None = None
        self._retry_after = "2"
        self._max_body = 0
        self._refuse = b""
        self._latency = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._release: asyncio.Event | None = None  # set: held requests may go

    # -- life cycle --------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL to give the client instead of the upstream's."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    def start(self) -> Self:
        """Serve (again, on the same port); returns once the port is listening."""
        if self._runner is not None:
            raise RuntimeError("the proxy is already serving")
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        self._call(self._serve())
        return self

    def stop(self) -> None:
        """Stop serving: held requests are let go, the port closes. start() serves again."""
        if self._runner is not None:
            self._call(self._shutdown())

    def close(self) -> None:
        """Stop serving and end the thread. Safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self.stop()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=15)

    async def _serve(self) -> None:
        self._release = asyncio.Event()
        if self._kind != "hang":
            self._release.set()
        self._client = aiohttp.ClientSession(
            auto_decompress=False,  # pass the upstream's answer on byte for byte
            timeout=aiohttp.ClientTimeout(total=self.upstream_timeout))
        # Any body size reaches the handler: only the 413 fault decides what is too big.
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # auto_decompress=False: forward the body exactly as the client compressed it.
        runner = web.AppRunner(app, access_log=None, auto_decompress=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        self._runner = runner

    async def _shutdown(self) -> None:
        runner, client = self._runner, self._client
        self._runner = self._client = None
        if self._release is not None:
            self._release.set()
        if runner is not None:
            await runner.cleanup()
        if client is not None:
            await client.close()

    # -- test controls -----------------------------------------------------------------
    def fault(self, kind: str, *, retry_after: float | str = 2, max_body: int = 0,
              refuse: bytes = b"") -> None:
        """Fail from now on: "500", "429" (``retry_after`` seconds, or an HTTP date),
        "413" (bodies over ``max_body`` bytes), "403", "400" (bodies holding ``refuse``)
        or "hang"."""
        if kind not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}, not {kind!r}")
        if kind == "413" and max_body <= 0:
            raise ValueError("fault 413 needs max_body, the largest body size forwarded")
        if kind == "400" and not refuse:
            raise ValueError("fault 400 needs refuse, the text of the lines refused")
        with self._lock:
            self._refuse = refuse
            self._kind = kind
            self._retry_after = (f"{retry_after:g}" if isinstance(retry_after, int | float)
                                 else str(retry_after))
            self._max_body = max_body
        self._set_release(kind != "hang")

    def clear(self) -> None:
        """Pass every request through again; requests held by "hang" are let go."""
        with self._lock:
            self._kind = None
        self._set_release(True)

    def latency(self, seconds: float) -> None:
        """Delay every answer by ``seconds`` from now on (0: answer at once)."""
        with self._lock:
            self._latency = seconds

    def _set_release(self, release: bool) -> None:
        loop, event = self._loop, self._release
        if loop is None or event is None:
            return
        loop.call_soon_threadsafe(event.set if release else event.clear)

    # -- what happened -----------------------------------------------------------------
    def requests(self) -> list[ProxiedRequest]:
        """Every request so far, in the order they arrived."""
        with self._lock:
            return list(self._records)

    def answers(self, since: int = 0) -> Counter[int]:
        """How many requests got each HTTP status (from request number ``since`` on)."""
        return Counter(r.status for r in self.requests()[since:] if r.status is not None)

    def hangs(self, since: int = 0) -> int:
        """How many requests the "hang" fault held (from request number ``since`` on)."""
        return sum(1 for r in self.requests()[since:] if r.hung)

    @property
    def held(self) -> int:
        """Requests held right now."""
        return sum(1 for r in self.requests() if r.hung and r.done_at is None)

    def wait_for_requests(self, count: int, timeout: float, since: int = 0) -> bool:
        """Wait until at least ``count`` requests (from number ``since`` on) have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.requests()) - since < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    # -- the proxy ---------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        record = ProxiedRequest(time.monotonic(), request.method, request.raw_path, len(body),
                                request.headers.get("Content-Encoding", ""))
        with self._lock:
            kind, retry_after, max_body = self._kind, self._retry_after, self._max_body
            refuse = self._refuse
            latency = self._latency
            index = len(self._records)
            self._records.append(record)

        def done(status: int | None = None, forwarded: bool = False) -> None:
            with self._lock:
                self._records[index] = replace(self._records[index], done_at=time.monotonic(),
                                               status=status, forwarded=forwarded)

        if kind == "hang":
            with self._lock:
                self._records[index] = replace(record, hung=True)
            assert self._release is not None
            await self._release.wait()
            done()
            # A server that never answered does not answer late: the connection just ends.
            # CancelledError ends the handler as aiohttp ends one whose client went away
            # (another exception would make aiohttp answer 500).
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        if latency:
            await asyncio.sleep(latency)
        if kind == "500":
            answer = _answer(500, "injected fault: the server failed")
        elif kind == "429":
            answer = _answer(429, f"injected fault: too many requests, retry after "
                                  f"{retry_after}", {"Retry-After": retry_after})
        elif kind == "403":
            answer = _answer(403, "injected fault: these credentials may not write here")
        elif kind == "400" and refuse in _plain(body, record.content_encoding):
            answer = _answer(400, '{"code":"invalid","message":"unable to parse line: '
                                  'injected fault"}')
        elif kind == "413" and len(body) > max_body:
            answer = _answer(413, f"injected fault: a body of {len(body)} bytes is over the "
                                  f"limit of {max_body} bytes")
        else:
            answer = await self._forward(request, body)
            done(status=answer.status, forwarded=answer.status != 502)
            return answer
        done(status=answer.status)
        return answer

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            async with self._client.request(
                    request.method, URL(self.upstream + request.raw_path, encoded=True),
                    data=body, headers=headers, allow_redirects=False,
                    # send only the headers the client sent, none of aiohttp's defaults
                    skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            ) as resp:
                raw = await resp.read()
                back = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP}
                return web.Response(status=resp.status, reason=resp.reason, body=raw,
                                    headers=back)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _answer(502, f"fault proxy: no answer from {self.upstream}: {exc!r}")


def _plain(body: bytes, encoding: str) -> bytes:
    """The body as written, before its Content-Encoding."""
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


def _answer(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    body = f"{HTTPStatus(status).phrase}: {text}\n".encode()
    return web.Response(status=status, body=body,
                        headers={"Content-Type": "text/plain; charset=utf-8", **(headers or {})})
