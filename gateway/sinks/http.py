"""One shared way to POST a body and read the answer, for the HTTP sinks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp


def safe_url(url: str) -> str:
    """The URL without user:password@ and query, fit for logs and status."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


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
                   auth: aiohttp.BasicAuth | None = None) -> PostResult:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.post(url, data=body, headers=dict(headers),
                                          params=dict(params or {}), auth=auth) as resp:
                text = await resp.text(errors="replace")
                return PostResult(resp.status, text, dict(resp.headers))
        except TimeoutError:
            return PostResult(error=f"no answer from {safe_url(url)} within "
                                    f"{self.timeout.total:.0f} s")
        except aiohttp.ClientError as exc:
            text = str(exc).replace(url, safe_url(url))
            return PostResult(error=f"cannot reach {safe_url(url)}: {text}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
