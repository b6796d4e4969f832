"""Rate limited (429): the gateway waits as long as Datadog asks, then delivers everything.

Datadog's API tells the wait in X-RateLimit-Reset (seconds); other proxies and
gateways in between say Retry-After. Either is honoured even when the
configured backoff is much shorter.
"""

from __future__ import annotations

import itertools
import time

import pytest
from paho.mqtt import publish

DD_KEY = "test-dd-api-key"


@pytest.mark.parametrize("headers", [
    {"X-RateLimit-Limit": "100", "X-RateLimit-Period": "10", "X-RateLimit-Remaining": "0",
     "X-RateLimit-Reset": "2", "X-RateLimit-Name": "metrics_submission"},
    {"Retry-After": "2"},
], ids=["x-ratelimit-reset", "retry-after"])
def test_rate_limited_requests_wait_as_asked_then_deliver(headers, mosquitto, datadog_intake,
                                                          make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "urn", "profile": "tasmota", "topic": "kitchen_urn"}],
        # backoff_min is far below the 2 s asked for: only the header can explain the wait
        "sinks": [{"name": "dd", "type": "datadog", "api_key": DD_KEY,
                   "url": datadog_intake.url, "backoff_min": 0.05, "backoff_max": 0.1}],
    })
    gw.start()
    assert gw.wait_for(lambda s: s["sinks"][0]["delivered"] > 0
                       and s["sinks"][0]["state"] == "idle", 20)
    before = len(datadog_intake.requests)
    datadog_intake.fail_next(429, count=2, headers=headers)
    publish.single("tele/kitchen_urn/SENSOR", '{"ENERGY":{"Power":2400,"Voltage":239}}', qos=1,
                   hostname=mosquitto.host, port=mosquitto.port)

    assert gw.wait_for(lambda s: s["sinks"][0]["state"] == "retrying", 15)
    sink = gw.sink("dd")
    assert "429" in sink["last_error"]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not datadog_intake.points("plug.voltage"):
        time.sleep(0.1)
    assert datadog_intake.points("plug.power")[0][1] == 2400
    assert datadog_intake.points("plug.voltage")[0][1] == 239

    mine = datadog_intake.requests[before:]
    assert [r.status for r in mine[:3]] == [429, 429, 202]
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(mine[:3])]
    assert all(gap >= 2.0 for gap in gaps), gaps
    assert gw.wait_for(lambda s: s["sinks"][0]["state"] in ("ok", "idle")
                       and s["sinks"][0]["last_error"] == "", 10)
    assert gw.sink("dd")["failures"] == 2
    assert gw.sink("dd")["dropped"] == {}
    assert gw.stop() == 0
