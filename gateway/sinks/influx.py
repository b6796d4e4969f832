"""Influx sink: line protocol over HTTP to InfluxDB 1.x/2.x or VictoriaMetrics.

Confirms a batch on HTTP 204/200 (InfluxDB answers 204; VictoriaMetrics 204).
413 splits the batch (a reading too large even alone goes to the dead-letter
table as too_large_413, rather than holding up every reading behind it); 400
bisects it to find the lines refused, which go to the dead-letter table, once
the destination is seen to accept other readings: a 400 for every request (a
mistyped path) holds the sink instead, as 401/403/404 do (credentials,
database or URL wrong), keeping every reading; 429 and 5xx retry honouring
Retry-After.

The forwarder gives one `send` the sink's `timeout` in all and keeps nothing of
a send it abandons. So a batch split into many requests stops splitting when
half of that time is gone and reports the leading rows it finished; the
forwarder comes straight back for the rest. (Otherwise a split slower than the
timeout, e.g. a small 413 limit over a slow link, would send the same batch
again and again, duplicating what had arrived, and never move on.)
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from gateway.clock import SYSTEM, Clock
from gateway.model import Row, SeriesInfo
from gateway.sinks.base import REFUSES_REQUEST, Outcome, Sink, retry_after_seconds
from gateway.sinks.http import HttpPoster, PostResult, excerpt, probe_verdict, safe_url
from gateway.sinks.influx_config import InfluxSinkConfig
from gateway.sinks.lineprotocol import line, series_prefix


@dataclass
class _Budget:
    """The time one `send` may take, from the sink's `timeout` (see the module doc), and
    what it has learnt: whether the destination takes any reading at all."""

    timeout: float
    batch: list[Row]
    clock: Clock
    started: float = 0.0
    proven: bool = False  # the destination accepted a request during this send

    def __post_init__(self) -> None:
        self.started = self.clock.monotonic()

    def may_split_further(self) -> bool:
        return self.clock.monotonic() - self.started < self.timeout / 2

    def left(self) -> float:
        """For a request after the first: what remains, less a margin to report back in."""
        return max(0.001, self.started + self.timeout * 0.9 - self.clock.monotonic())


_HINTS = {401: " (check username/password or token)", 403: " (check username/password or token)",
          404: " (check url, api and database or bucket)", 405: " (check url and api)"}


class InfluxSink(Sink):
    confirms = "HTTP 2xx from the write endpoint"

    def __init__(self, config: InfluxSinkConfig, clock: Clock = SYSTEM) -> None:
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
        #: the newest reading the destination accepted: after a 400, sending it again
        #: tells a refused reading from a refused request (harmless: InfluxDB keeps one
        #: point per series and time)
        self._good: Row | None = None

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
        return await self._send(list(rows), _Budget(self.config.timeout, list(rows), self.clock),
                                first=True)

    async def _send(self, rows: list[Row], budget: _Budget, first: bool = False) -> Outcome:
        res = await self._post(rows, None if first else budget.left())
        if res.error:
            return Outcome.failed(res.error)
        status = res.status
        if 200 <= status < 300:
            budget.proven = True
            self._good = rows[-1]
            return Outcome(done=len(rows), delivered=len(rows))
        what = f"HTTP {status} from {safe_url(self.url)}: {excerpt(res.text)}"
        if status in REFUSES_REQUEST:
            return Outcome.held(what + _HINTS.get(status, ""))
        if status == 400 and not budget.proven:
            verdict = await self._prove(rows, what, budget)
            if verdict is not None:
                return verdict
        if status == 413 or status == 400:
            if len(rows) == 1:
                reason = "too_large_413" if status == 413 else "rejected_400"
                return Outcome(done=1, dead=[(rows[0], reason)], refusal=what)
            return await self._halves(rows, budget)
        return Outcome.failed(what, retry_after_seconds(res.headers.get("Retry-After"),
                                                        self.clock.now()))

    async def _prove(self, rows: list[Row], what: str, budget: _Budget) -> Outcome | None:
        """After a 400: is it these readings, or every request? None when the destination
        takes some reading (the refused ones are then dead-lettered one by one), else the
        outcome to return: held, or a failure to retry.

        A wrong URL or path (VictoriaMetrics answers 400 "unsupported path requested")
        refuses every request: dead-lettering each reading for it would lose them all,
        so the sink is held with the destination's reason instead. The test is a
        reading the destination accepted before (`_good`); with none yet since the
        start, the batch is bisected and its first refused single reading is tried
        against the batch's last one.
        """
        if self._good is not None:
            probe = self._good
        elif len(rows) > 1:
            return None  # bisect: the first single reading refused comes back here
        elif budget.batch[-1] is not rows[0]:
            probe = budget.batch[-1]
        else:
            probe = None  # one reading, refused: nothing else to tell by
        if probe is not None:
            verdict = probe_verdict(await self._post([probe], budget.left()), self.url)
            if verdict is True:
                budget.proven = True
                return None
            if verdict is not False:
                return verdict
        return Outcome.held(f"{what} (every request is refused, whatever reading it holds: "
                            "check url, api, database or bucket; the readings are kept)")

    async def _halves(self, rows: list[Row], budget: _Budget) -> Outcome:
        mid = len(rows) // 2
        first = await self._send(rows[:mid], budget)
        if first.hold or first.done < mid or not budget.may_split_further():
            return first  # its leading rows are finished; the rest waits for the next send
        second = await self._send(rows[mid:], budget)
        return Outcome(done=first.done + second.done,
                       delivered=first.delivered + second.delivered,
                       dead=first.dead + second.dead,
                       retry_after=second.retry_after, hold=second.hold, error=second.error,
                       refusal=second.refusal or first.refusal)
