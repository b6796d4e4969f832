"""Datadog sink: metrics intake v2 (/api/v2/series, default) or v1 (/api/v1/series).

Facts this follows (DESIGN.md, Datadog's metrics API docs):
- auth by the DD-API-KEY header; 403 means the key is wrong or revoked: hold
  the sink, keep the data, report loudly (as for 404, a wrong site or url);
- request bodies at most 500 KB compressed and 5 MB uncompressed; 413 splits;
- Datadog stores one point per series per second: readings of one series in
  the same second are combined here as their type demands (gauge: last value,
  count: sum, rate: mean), and the combined ones counted as `merged`. A second
  whose readings arrive in two batches is sent again with the combination of
  all of them (Datadog keeps the later point), so a count is never cut short;
- points over 1 hour old or 10 minutes in the future are dropped by Datadog
  unless the metric has historical ingestion: with `historical: false` they go
  to the dead-letter table (or are dropped, by config), counted either way;
- 400 is never retried as is: the batch is bisected and the refused series go
  to the dead-letter table, once Datadog is seen to accept other series; a 400
  for every request holds the sink instead, keeping the data; 429/5xx back off
  honouring Retry-After.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.clock import SYSTEM, Clock
from gateway.model import Row
from gateway.sinks.base import REFUSES_REQUEST, Outcome, Sink, retry_after_seconds
from gateway.sinks.datadog_config import DatadogSinkConfig
from gateway.sinks.http import HttpPoster, excerpt, probe_verdict, safe_url

MAX_COMPRESSED = 500 * 1024
MAX_UNCOMPRESSED = 5 * 1024 * 1024
# Aim well below the limits: a request is split before it is sent, not after a 413.
TARGET_UNCOMPRESSED = 3 * 1024 * 1024
MAX_AGE = 3600.0
MAX_AHEAD = 600.0
SAFETY = 30.0  # a point this close to the age limit could cross it in flight

V2_TYPES = {"count": 1, "rate": 2, "gauge": 3}
#: series whose JSON and last accepted second are kept between batches; past this, both
#: are forgotten before the next batch (never during one: its requests still read them)
SERIES_KEPT = 100000
UNITS = {"W": "watt", "kW": "kilowatt", "V": "volt", "A": "ampere", "mA": "milliampere",
         "%": "percent", "s": "second", "ms": "millisecond", "Hz": "hertz"}


@dataclass
class _Sent:
    """The newest second of one series that Datadog has accepted, and what it holds."""

    second: int
    value: float
    count: int
    last_id: int  # the newest row combined into `value`


@dataclass
class _Series:
    """One Datadog series in a request: its points, and the rows they came from."""

    sid: int
    rows: list[Row] = field(default_factory=list)
    points: dict[int, float] = field(default_factory=dict)  # second -> value
    counts: dict[int, int] = field(default_factory=dict)
    #: a compacted row's companions (min, max, last, samples): suffix -> second -> value
    extras: dict[str, dict[int, float]] = field(default_factory=dict)


def _combine(mtype: str, old: float, new: float, n: int) -> float:
    if mtype == "count":
        return old + new
    if mtype == "rate":
        return old + (new - old) / n  # running mean
    return new  # gauge: last value wins


class DatadogSink(Sink):
    confirms = "HTTP 202 from the Datadog metrics intake"

    def __init__(self, config: DatadogSinkConfig, clock: Clock = SYSTEM) -> None:
        super().__init__(config.name, clock)
        self.config = config
        base = (config.url or f"https://api.{config.site}").rstrip("/")
        self.url = f"{base}/api/{config.api}/series"
        self.poster = HttpPoster(config.timeout)
        self._series_json: dict[int, dict] = {}
        # Per series, the newest second already accepted: readings of that second in
        # a later batch are combined with it and the second is sent again.
        self._sent: dict[int, _Sent] = {}
        #: during one send: whether Datadog accepted a request, and the batch's series
        self._proven = False
        self._batch: list[_Series] = []

    async def close(self) -> None:
        await self.poster.close()

    # -- building requests -------------------------------------------------------------

    def _series_base(self, row: Row) -> dict:
        base = self._series_json.get(row.series)
        if base is None:
            info = row.info
            tags = [f"{k}:{v}" for k, v in sorted(info.tags.items()) if v != ""]
            host = info.tags.get("gateway", "")
            if self.config.api == "v2":
                base = {"metric": info.metric, "type": V2_TYPES.get(info.type, 0), "tags": tags}
                if host:
                    base["resources"] = [{"name": host, "type": "host"}]
                if info.unit in UNITS:
                    base["unit"] = UNITS[info.unit]
            else:
                base = {"metric": info.metric, "type": info.type, "tags": tags}
                if host:
                    base["host"] = host
            self._series_json[row.series] = base
        return base

    def _points(self, points: dict[int, float]) -> list[Any]:
        if self.config.api == "v2":
            return [{"timestamp": t, "value": v} for t, v in sorted(points.items())]
        return [[t, v] for t, v in sorted(points.items())]

    def _series_bodies(self, s: _Series) -> list[dict]:
        """The series, and for compacted rows its companions as gauges <metric>.min ..."""
        base = self._series_json[s.sid]
        out = [{**base, "points": self._points(s.points)}]
        for suffix, points in s.extras.items():
            if not points:
                continue
            extra = {**base, "metric": f"{base['metric']}.{suffix}",
                     "type": V2_TYPES["gauge"] if self.config.api == "v2" else "gauge",
                     "points": self._points(points)}
            if suffix == "samples":
                extra.pop("unit", None)
            out.append(extra)
        return out

    def _group(self, rows: Sequence[Row], outcome: Outcome) -> list[_Series]:
        """Group rows into series, one point per second; set aside stale points."""
        now = self.clock.now()
        oldest, newest = now - MAX_AGE + SAFETY, now + MAX_AHEAD - SAFETY
        series: dict[int, _Series] = {}
        for row in rows:
            ts = row.ts
            if not self.config.historical and not oldest <= ts <= newest:
                reason = "too_old" if ts < oldest else "in_future"
                if self.config.stale == "drop":
                    outcome.dropped[reason] = outcome.dropped.get(reason, 0) + row.samples
                else:
                    outcome.dead.append((row, reason))
                continue
            s = series.get(row.series)
            if s is None:
                self._series_base(row)
                s = series[row.series] = _Series(row.series)
            s.rows.append(row)
            sec = int(ts)
            sent = self._sent.get(row.series)
            if sent is not None and sent.second != sec:
                sent = None
            if sec not in s.points and sent is not None:
                s.points[sec], s.counts[sec] = sent.value, sent.count
            if sent is not None and 0 < row.id <= sent.last_id:
                # Already in the accepted value (a batch sent again after a failure). A
                # redelivered dead letter (negative id) never is.
                continue
            if row.rollup is not None:
                for suffix, value in row.rollup.companions(row.info.rollup):
                    s.extras.setdefault(suffix, {})[sec] = value
            if sec in s.points:
                n = s.counts[sec] = s.counts[sec] + 1
                s.points[sec] = _combine(row.info.type, s.points[sec], row.value, n)
                outcome.merged += 1
            else:
                s.points[sec] = row.value
                s.counts[sec] = 1
        return list(series.values())

    def _remember(self, chunk: list[_Series]) -> None:
        """Note each series' newest accepted second, to continue it in the next batch."""
        for s in chunk:
            sec = max(s.points)
            old = self._sent.get(s.sid)
            if old is not None and old.second > sec:
                continue
            last_id = max((r.id for r in s.rows if int(r.ts) == sec), default=0)
            if old is not None and old.second == sec:
                last_id = max(last_id, old.last_id)
            self._sent[s.sid] = _Sent(sec, s.points[sec], s.counts[sec], last_id)

    def _chunks(self, series: list[_Series]) -> list[list[_Series]]:
        """Split series into requests below the uncompressed target size."""
        chunks: list[list[_Series]] = [[]]
        size = 0
        for s in series:
            n = len(json.dumps(self._series_bodies(s), separators=(",", ":")))
            if chunks[-1] and size + n > TARGET_UNCOMPRESSED:
                chunks.append([])
                size = 0
            chunks[-1].append(s)
            size += n
        return [c for c in chunks if c]

    def _encode(self, chunk: list[_Series]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"series": [b for s in chunk for b in self._series_bodies(s)]},
                          separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "DD-API-KEY": str(self.config.api_key)}
        if self.config.compression == "deflate":
            body = zlib.compress(body, 6)
            headers["Content-Encoding"] = "deflate"
        elif self.config.compression == "gzip":
            body = gzip.compress(body, 6)
            headers["Content-Encoding"] = "gzip"
        return body, headers

    # -- sending ---------------------------------------------------------------------------

    async def send(self, rows: Sequence[Row]) -> Outcome:
        # A second whose readings come in two batches is combined by `_sent` (the
        # later batch sends the second again, holding both): one mechanism for it.
        if len(self._series_json) > SERIES_KEPT or len(self._sent) > SERIES_KEPT:
            self._series_json.clear()
            self._sent.clear()
        outcome = Outcome()
        series = self._group(rows, outcome)
        self._proven = False
        self._batch = series
        for chunk in self._chunks(series):
            result = await self._send_chunk(chunk)
            outcome.dead.extend(result.dead)
            outcome.delivered += result.delivered
            outcome.refusal = outcome.refusal or result.refusal
            if result.error:
                # Nothing moves until the whole batch is through: resending a chunk
                # that already arrived is harmless (same series, same second).
                return Outcome(error=result.error, retry_after=result.retry_after,
                               hold=result.hold, merged=0)
        outcome.done = len(rows)
        return outcome

    async def _send_chunk(self, chunk: list[_Series]) -> Outcome:
        body, headers = self._encode(chunk)
        if len(body) > MAX_COMPRESSED and len(chunk) > 1:
            return await self._halves(chunk)
        res = await self.poster.post(self.url, body, headers)
        rows = [r for s in chunk for r in s.rows]
        if res.error:
            return Outcome.failed(res.error)
        if 200 <= res.status < 300:
            self._proven = True
            self._remember(chunk)
            return Outcome(delivered=len(rows))
        if res.status == 413:
            return await self._halves(chunk)
        what = f"HTTP {res.status} from {safe_url(self.url)}: {excerpt(res.text)}"
        if res.status == 400:
            if not self._proven:
                verdict = await self._prove(chunk, what)
                if verdict is not None:
                    return verdict
            if len(chunk) > 1:
                return await self._halves(chunk)
            return Outcome(dead=[(r, "rejected_400") for r in rows], refusal=what)
        if res.status in (401, 403):
            where = (f"url {safe_url(self.config.url)}" if self.config.url
                     else f"site {self.config.site}")
            return Outcome.held(what + f" (is the API key right for {where}?)")
        if res.status in REFUSES_REQUEST:
            return Outcome.held(what + " (wrong site or url?)")
        wait = retry_after_seconds(res.headers.get("Retry-After"), self.clock.now())
        if wait is None and res.status == 429:
            wait = retry_after_seconds(res.headers.get("X-RateLimit-Reset"), self.clock.now())
        return Outcome.failed(what, wait)

    async def _prove(self, chunk: list[_Series], what: str) -> Outcome | None:
        """After a 400: is it these series, or every request? None when Datadog takes
        some series (the refused ones are then dead-lettered one by one), else held or
        a failure to retry. The test is a point Datadog accepted before, sent again (it
        keeps one point per series and second: the same value again changes nothing);
        with none yet since the start, the batch is bisected and its first refused
        single series is tried against the batch's last one."""
        probe: _Series | None = None
        sent = next(((sid, p) for sid, p in self._sent.items() if sid in self._series_json),
                    None)
        if sent is not None:
            sid, point = sent
            probe = _Series(sid, [], {point.second: point.value}, {point.second: point.count})
        elif len(chunk) > 1:
            return None  # bisect: the first single series refused comes back here
        elif self._batch and self._batch[-1] is not chunk[0]:
            probe = self._batch[-1]
        if probe is not None:
            body, headers = self._encode([probe])
            verdict = probe_verdict(await self.poster.post(self.url, body, headers), self.url)
            if verdict is True:
                self._proven = True
                return None
            if verdict is not False:
                return verdict
        return Outcome.held(f"{what} (every request is refused, whatever series it holds: "
                            "check site, url and api; the readings are kept)")

    async def _halves(self, chunk: list[_Series]) -> Outcome:
        if len(chunk) == 1:
            # One series too large: split its points.
            return await self._split_points(chunk[0])
        mid = len(chunk) // 2
        first = await self._send_chunk(chunk[:mid])
        if first.error:
            return first
        second = await self._send_chunk(chunk[mid:])
        second.dead = first.dead + second.dead
        second.delivered += first.delivered
        second.refusal = second.refusal or first.refusal
        return second

    async def _split_points(self, s: _Series) -> Outcome:
        secs = sorted(s.points)
        if len(secs) <= 1:
            return Outcome(dead=[(r, "too_large_413") for r in s.rows])
        half = set(secs[: len(secs) // 2])

        def part(keep: bool) -> _Series:
            return _Series(s.sid, [r for r in s.rows if (int(r.ts) in half) == keep],
                           {t: v for t, v in s.points.items() if (t in half) == keep},
                           {t: n for t, n in s.counts.items() if (t in half) == keep},
                           {k: {t: v for t, v in pts.items() if (t in half) == keep}
                            for k, pts in s.extras.items()})

        return await self._halves([part(True), part(False)])
