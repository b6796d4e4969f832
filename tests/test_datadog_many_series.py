"""Past its series cache, the Datadog sink forgets between batches, never within one.

It keeps each series' JSON and newest accepted second. When there were more
series than it keeps (100,000), it used to empty the cache while building a
batch that still read it: a KeyError, logged as an unexpected error and retried
forever, so the sink never delivered again. The cache is made small here; the
batch goes to the Datadog intake stand-in.
"""

from __future__ import annotations

import asyncio
import time

from gateway.model import Row, SeriesInfo
from gateway.sinks import datadog
from gateway.sinks.datadog import DatadogSink
from gateway.sinks.datadog_config import DatadogSinkConfig

DD_KEY = "test-dd-api-key"


def _rows(first_series: int, count: int, second: int) -> list[Row]:
    return [Row(first_series + i, first_series + i, second * 1000, float(i),
                SeriesInfo(f"room.temperature{first_series + i}", "gauge", "°C", "normal",
                           {"device": f"d{first_series + i}", "gateway": "hall"}))
            for i in range(count)]


def test_a_batch_with_more_series_than_are_kept_is_delivered(datadog_intake, monkeypatch):
    monkeypatch.setattr(datadog, "SERIES_KEPT", 3)
    sink = DatadogSink(DatadogSinkConfig(name="dd", api_key=DD_KEY, url=datadog_intake.url))
    now = int(time.time())

    async def both() -> tuple:
        try:
            first = await sink.send(_rows(1, 5, now - 5))  # 5 series: over the limit
            second = await sink.send(_rows(6, 5, now - 4))  # forgets, then builds afresh
            return first, second
        finally:
            await sink.close()

    first, second = asyncio.run(both())
    for outcome in (first, second):
        assert outcome.error == "" and outcome.delivered == 5 and outcome.done == 5, outcome
    assert sorted(int(s["metric"].removeprefix("room.temperature"))
                  for s in datadog_intake.series()) == list(range(1, 11))

