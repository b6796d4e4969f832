"""VictoriaMetrics (Debian ``victoria-metrics`` 1.79.5) as a real destination for tests.

What this VictoriaMetrics does, measured here against the installed binary
(tests/test_fixtures_programs.py keeps the important ones checked):

Influx line protocol (``POST /write``, also ``/api/v2/write``; 204 on success)
  * ``plug,device=a,gateway=g power=5 1700000000000`` with ``?precision=ms`` becomes
    series ``plug_power{device="a",gateway="g"}`` at 1700000000000 ms:
    ``{measurement}_{field}`` (``-influxMeasurementFieldSeparator``), tags become labels.
  * Storage is in milliseconds. Without ``precision`` VM *guesses* the unit from the
    number's size (1700000000, ...000, ...000000, ...000000000 all land at the same
    ms), unlike InfluxDB, which reads a bare timestamp as ns. So a sink must send
    ``precision`` explicitly. Sub-millisecond parts are cut off
    (``-influxTrimTimestamp=1ms``).
  * Two samples of one series at the same millisecond are both kept (deduplication
    is off unless ``-dedup.minScrapeInterval`` is set): the export shows both values
    with equal timestamps. (InfluxDB instead keeps the last one.)
  * Malformed lines are skipped but the request still gets 204; they show only
    in the log and in ``vm_rows_invalid_total{type="influx"}``. String fields are
    stored as 0, booleans as 0/1.
  * Samples more than 2 days in the future are dropped (still 204), counted in
    ``vm_rows_ignored_total{reason="big_timestamp"}``; samples older than
    ``-retentionPeriod`` (default 1 month!) likewise (``small_timestamp``), so this
    fixture sets ``-retentionPeriod=100y`` to keep fixed 2023 timestamps.

Visibility of fresh data
  * Without a flush, a *new series* appeared in ``/api/v1/export`` only after about
    10 s (index flush); a new sample of a known series after about 1 s.
    ``GET /internal/force_flush`` makes everything visible at once: :meth:`export`
    calls it first.
  * ``/api/v1/export`` without ``end`` stops at the current second, hiding samples
    written in this second; :meth:`export` passes ``start=0`` and an ``end`` 3 days
    ahead.
  * ``force_flush`` makes data searchable, not durable: data written and flushed
    less than ~5 s before a SIGKILL (``kill()``) was lost; after ``flush()`` plus
    ~5 s it survived (``DISK_FLUSH_SECONDS`` = 6). SIGTERM (``stop()``/``restart()``)
    writes everything out. A 204 from VM is therefore not durability.
  * Flags used so results are never stale: ``-search.latencyOffset=0s`` (default 30 s
    hides the newest points from queries) and ``-search.disableCache``.

Datadog
  * ``POST /datadog/api/v1/series`` is accepted (202 ``{"status":"ok"}``, also with
    ``Content-Encoding: deflate``); ``DD-API-KEY`` is not checked; no timestamp
    window is applied (a 2023 point is stored). Metric names keep their dots
    (``dd.m``), ``host`` becomes label ``host``, tag ``a:b`` becomes ``a="b"`` and a
    bare tag ``c`` becomes ``c="no_label_value"``.
  * ``/datadog/api/v2/series`` is NOT supported by 1.79 (400 "unsupported path"),
    hence the v2 stand-in in ``tests/standins/datadog_intake.py``.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .ports import LOOPBACK, free_port
from .process import ManagedProcess

VICTORIA_BINARY = "/usr/bin/victoria-metrics"


class VictoriaMetrics(ManagedProcess):
    """A single-node VictoriaMetrics with its own data directory and port.

    Started with flags that make written data visible to queries at once (see the
    module docstring). ``restart()`` keeps port and data.
    """

    name = "victoria-metrics"
    #: After ``flush()``, waiting this long makes data survive ``kill()`` (measured).
    DISK_FLUSH_SECONDS = 6.0

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        binary: str = VICTORIA_BINARY,
        extra_flags: list[str] | None = None,
    ) -> None:
        super().__init__(workdir, port if port is not None else free_port(), LOOPBACK)
        found = shutil.which(binary)
        if found is None:
            raise FileNotFoundError(f"{binary} not found: apt-get install victoria-metrics")
        self.binary = found
        self.data_path = self.workdir / "data"
        self.extra_flags = list(extra_flags or [])

    def command(self) -> list[str]:
        return [
            self.binary,
            f"-storageDataPath={self.data_path}",
            f"-httpListenAddr={self.host}:{self.port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-selfScrapeInterval=0",
            "-loggerLevel=INFO",
            *self.extra_flags,
        ]

    def is_ready(self) -> bool:
        try:
            return self._request("GET", "/health", timeout=0.5)[0] == 200
        except OSError:
            return False

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8428`` (Influx ``/write`` is under it)."""
        return f"http://{self.host}:{self.port}"

    # -- HTTP -------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(
            self.url + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def write_influx(self, lines: str | bytes, precision: str | None = None) -> int:
        """POST Influx line protocol to ``/write``; returns the HTTP status (204 on success)."""
        data = lines.encode() if isinstance(lines, str) else lines
        query = f"?precision={precision}" if precision else ""
        return self._request("POST", "/write" + query, data)[0]

    def flush(self) -> None:
        """Make everything ingested so far searchable (``/internal/force_flush``)."""
        status, body = self._request("GET", "/internal/force_flush")
        if status != 200:
            raise RuntimeError(f"force_flush answered {status}: {body[:200]!r}")

    def export(self, match: str = '{__name__!=""}') -> list[dict[str, Any]]:
        """All raw samples of the series matching ``match`` (``/api/v1/export``), after a flush.

        Each item: ``{"metric": {labels incl. __name__}, "values": [...], "timestamps": [ms...]}``.
        """
        self.flush()
        end = int(time.time()) + 3 * 86400  # VM accepts samples up to 2 days ahead
        query = urllib.parse.urlencode({"match[]": match, "start": "0", "end": str(end)})
        status, body = self._request("GET", f"/api/v1/export?{query}")
        if status != 200:
            raise RuntimeError(f"export answered {status}: {body[:500]!r}")
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]

    def sample_count(self, match: str = '{__name__!=""}') -> int:
        """Number of stored samples across all matching series."""
        return sum(len(item["values"]) for item in self.export(match))

    def series(self, match: str = '{__name__!=""}') -> list[dict[str, str]]:
        """Label sets (``__name__`` included) of the matching series."""
        return [item["metric"] for item in self.export(match)]

    def self_metrics(self, prefix: str = "vm_") -> dict[str, float]:
        """VM's own counters from ``/metrics`` (``name{labels}`` -> value), e.g.
        ``vm_rows_invalid_total{type="influx"}``, for asserting nothing was rejected."""
        status, body = self._request("GET", "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        found: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line.startswith(prefix):
                key, _, value = line.rpartition(" ")
                found[key] = float(value)
        return found
