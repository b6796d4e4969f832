"""Influx sink: line protocol over HTTP to InfluxDB 1.x/2.x or VictoriaMetrics.

Confirms a batch on HTTP 204/200 (InfluxDB answers 204; VictoriaMetrics 204).
413 splits the batch; 400 bisects it to find the lines refused, which go to the
dead-letter table; 401/403/404 stop the sink (credentials, database or URL
wrong); 429 and 5xx retry honouring Retry-After.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Sequence

import aiohttp

from gateway.config.schema import InfluxSinkConfig
from gateway.sinks.base import Outcome, Sink, retry_after_seconds
from gateway.sinks.http import HttpPoster, PostResult, safe_url
from gateway.sinks.lineprotocol import line, series_prefix
from gateway.store.outbox import Row, SeriesInfo


class InfluxSink(Sink):
    confirms = "HTTP 2xx from the write endpoint"

    def __init__(self, config: InfluxSinkConfig, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config.name, clock)
        self.config = config
        base = config.url.rstrip("/")
        if config.api == "v2":
            self.url = f"{base}/api/v2/write"
            self.params = {"org": config.org or "", "bucket": config.bucket or "",
                           "precision": "ms"}
        else:
            self.url = f"{base}/write"
            self.params = {"precision": "ms"}
            if config.database:
                self.params["db"] = config.database
        self.headers = {"Content-Type": "text/plain; charset=utf-8"}
        if config.api == "v2" and config.token:
            self.headers["Authorization"] = f"Token {config.token}"
        self.auth = (aiohttp.BasicAuth(config.username, str(config.password))
                     if config.username and config.password else None)
        self.poster = HttpPoster(config.timeout)
        self._prefixes: dict[int, str] = {}

    async def close(self) -> None:
        await self.poster.close()

    def _encode(self, rows: Sequence[Row]) -> bytes:
        prefixes = self._prefixes
        out = []
        for r in rows:
            p = prefixes.get(r.series)
            if p is None:
                if len(prefixes) > 100000:
                    prefixes.clear()
                p = prefixes[r.series] = series_prefix(r.info)
            out.append(line(p, r.value, r.ts_ms))
            if r.rollup is not None:
                out.extend(self._companions(r))
        body = ("\n".join(out) + "\n").encode("utf-8")
        return body

    @staticmethod
    def _companions(r: Row) -> list[str]:
        """A compacted row's min, max, last and samples as fields beside its own:
        plug.power -> power_min, power_max... (VictoriaMetrics: plug_power_min)."""
        assert r.rollup is not None
        info = r.info
        return [line(series_prefix(SeriesInfo(f"{info.metric}_{suffix}", info.type, info.unit,
                                              info.priority, info.tags)), value, r.ts_ms)
                for suffix, value in r.rollup.companions(info.rollup)]

    async def _post(self, rows: Sequence[Row]) -> PostResult:
        body = self._encode(rows)
        headers = dict(self.headers)
        if self.config.gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return await self.poster.post(self.url, body, headers, self.params, self.auth)

    async def send(self, rows: Sequence[Row]) -> Outcome:
        return await self._send(list(rows))

    async def _send(self, rows: list[Row]) -> Outcome:
        res = await self._post(rows)
        if res.error:
            return Outcome.failed(res.error)
        status = res.status
        if 200 <= status < 300:
            return Outcome(done=len(rows), delivered=len(rows))
        if status == 413 and len(rows) > 1:
            return await self._halves(rows)
        if status == 400:
            if len(rows) == 1:
                return Outcome(done=1, dead=[(rows[0], "rejected_400")])
            return await self._halves(rows)
        what = f"HTTP {status} from {safe_url(self.url)}: {res.text[:200]}"
        if status in (401, 403, 404):
            return Outcome.stopped(what)
        return Outcome.failed(what, retry_after_seconds(res.headers.get("Retry-After"),
                                                        self.clock()))

    async def _halves(self, rows: list[Row]) -> Outcome:
        mid = len(rows) // 2
        first = await self._send(rows[:mid])
        if first.done < mid:
            return first
        second = await self._send(rows[mid:])
        return Outcome(done=first.done + second.done,
                       delivered=first.delivered + second.delivered,
                       dead=first.dead + second.dead,
                       retry_after=second.retry_after, stop=second.stop, error=second.error)
