"""Influx sink: line protocol over HTTP to InfluxDB 1.x/2.x or VictoriaMetrics.

Confirms a batch on HTTP 204/200 (InfluxDB answers 204; VictoriaMetrics 204).
413 splits the batch (a reading too large even alone goes to the dead-letter
table as too_large_413, rather than holding up every reading behind it); 400
bisects it to find the lines refused, which go to the dead-letter table;
401/403/404 stop the sink (credentials, database or URL wrong); 429 and 5xx
retry honouring Retry-After.

The forwarder gives one `send` the sink's `timeout` in all and keeps nothing of
a send it abandons. So a batch split into many requests stops splitting when
half of that time is gone and reports the leading rows it finished; the
forwarder comes straight back for the rest. (Otherwise a split slower than the
timeout, e.g. a small 413 limit over a slow link, would send the same batch
again and again, duplicating what had arrived, and never move on.)
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from gateway.config.schema import InfluxSinkConfig
from gateway.sinks.base import Outcome, Sink, retry_after_seconds
from gateway.sinks.http import HttpPoster, PostResult, excerpt, safe_url
from gateway.sinks.lineprotocol import line, series_prefix
from gateway.store.outbox import Row, SeriesInfo


@dataclass
class _Budget:
    """The time one `send` may take, from the sink's `timeout` (see the module doc)."""

    timeout: float
    started: float = field(default_factory=time.monotonic)

    def may_split_further(self) -> bool:
        return time.monotonic() - self.started < self.timeout / 2

    def left(self) -> float:
        """For a request after the first: what remains, less a margin to report back in."""
        return max(0.001, self.started + self.timeout * 0.9 - time.monotonic())


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

    async def _post(self, rows: Sequence[Row], timeout: float | None) -> PostResult:
        body = self._encode(rows)
        headers = dict(self.headers)
        if self.config.gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        return await self.poster.post(self.url, body, headers, self.params, self.auth,
                                      timeout)

    async def send(self, rows: Sequence[Row]) -> Outcome:
        return await self._send(list(rows), _Budget(self.config.timeout), first=True)

    async def _send(self, rows: list[Row], budget: _Budget, first: bool = False) -> Outcome:
        res = await self._post(rows, None if first else budget.left())
        if res.error:
            return Outcome.failed(res.error)
        status = res.status
        if 200 <= status < 300:
            return Outcome(done=len(rows), delivered=len(rows))
        if status == 413:
            if len(rows) == 1:
                return Outcome(done=1, dead=[(rows[0], "too_large_413")])
            return await self._halves(rows, budget)
        if status == 400:
            if len(rows) == 1:
                return Outcome(done=1, dead=[(rows[0], "rejected_400")])
            return await self._halves(rows, budget)
        what = f"HTTP {status} from {safe_url(self.url)}: {excerpt(res.text)}"
        if status in (401, 403, 404):
            return Outcome.stopped(what)
        return Outcome.failed(what, retry_after_seconds(res.headers.get("Retry-After"),
                                                        self.clock()))

    async def _halves(self, rows: list[Row], budget: _Budget) -> Outcome:
        mid = len(rows) // 2
        first = await self._send(rows[:mid], budget)
        if first.done < mid or not budget.may_split_further():
            return first  # its leading rows are finished; the rest waits for the next send
        second = await self._send(rows[mid:], budget)
        return Outcome(done=first.done + second.done,
                       delivered=first.delivered + second.delivered,
                       dead=first.dead + second.dead,
                       retry_after=second.retry_after, stop=second.stop, error=second.error)
