"""One shared way to POST a body and read the answer, for the HTTP sinks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from gateway.sinks.base import Outcome


def safe_url(url: str) -> str:
    """The URL without user:password@ and query, fit for logs and status."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def excerpt(text: str, limit: int = 200) -> str:
    """The start of an answer's body on one line, fit for a log record and status.

    Error bodies often hold line breaks (an HTML error page; plain text ending
    in a newline): kept as they are, they split a log record in two, and the
    second part, carrying the advice after the body, loses its level and time.
    """
    return " ".join(text[: limit * 4].split())[:limit]


@dataclass
class PostResult:
    status: int = 0
    text: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str = ""  # set when no HTTP answer came (connection refused, timeout)


class HttpPoster:
    """Holds one aiohttp session (created lazily inside the running loop)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str],
                   params: Mapping[str, str] | None = None,
                   auth: aiohttp.BasicAuth | None = None,
                   timeout: float | None = None) -> PostResult:
        """POST and read the answer. `timeout`: this request's limit, when shorter than
        the sink's (a request late in a split batch gets what is left of its time)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        limit = self.timeout if timeout is None else aiohttp.ClientTimeout(total=timeout)
        try:
            async with self._session.post(url, data=body, headers=dict(headers),
                                          params=dict(params or {}), auth=auth,
                                          timeout=limit) as resp:
                text = await resp.text(errors="replace")
                return PostResult(resp.status, text, dict(resp.headers))
        except TimeoutError:
            return PostResult(error=f"no answer from {safe_url(url)} within "
                                    f"{round(limit.total or 0, 2):g} s")
        except aiohttp.ClientError as exc:
            text = str(exc).replace(url, safe_url(url))
            return PostResult(error=f"cannot reach {safe_url(url)}: {text}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def probe_verdict(res: PostResult, url: str) -> bool | Outcome:
    """What a destination's answer to a probe says after a 400 (see the influx and
    datadog sinks): True, it took the probe (so the 400 was about the readings);
    False, it refused that too (so every request is refused: hold the sink); or a
    failure to retry later when it gave no verdict (no answer, 5xx, 429)."""
    if res.error:
        return Outcome.failed(res.error)
    if 200 <= res.status < 300:
        return True
    if res.status >= 500 or res.status == 429:
        return Outcome.failed(f"HTTP {res.status} from {safe_url(url)}: {excerpt(res.text)}")
    return False
