"""A wrong Datadog API key (403) holds the sink loudly and keeps its readings.

No retry will fix a refused key: the sink reports "held" with the 403 in
its last error and an ERROR in the log, and its backlog stays in the store for
when the key is fixed. The key itself never appears in the log or the status.
"""

from __future__ import annotations

import json

from paho.mqtt import publish

WRONG_KEY = "dd0bad5ec7e7a11c2f4e9d1b8a6c3e5f"


def test_wrong_api_key_holds_the_sink_and_keeps_the_backlog(mosquitto, datadog_intake,
                                                            make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 1},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "defib-socket", "profile": "tasmota", "topic": "defib_socket"}],
        "sinks": [{"name": "dd", "type": "datadog", "api_key": "${DD_API_KEY}",
                   "url": datadog_intake.url, "backoff_min": 0.2, "backoff_max": 1}],
    }, env={"DD_API_KEY": WRONG_KEY})
    gw.start()
    for power in (38, 39, 40):
        publish.single("tele/defib_socket/SENSOR", f'{{"ENERGY":{{"Power":{power}}}}}', qos=1,
                       hostname=mosquitto.host, port=mosquitto.port)
    assert gw.wait_for(lambda s: s["ingest"]["stored"] >= 3, 15)
    assert gw.wait_for(lambda s: s["sinks"][0]["state"] == "held", 15), gw.status()

    sink = gw.sink("dd")
    assert "403" in sink["last_error"]
    assert sink["delivered"] == 0
    assert sink["dropped"] == {}  # refused key: nothing dead-lettered or dropped
    # The backlog (refreshed each self-metrics round) holds the readings.
    assert gw.wait_for(lambda s: (s["sinks"][0]["backlog_rows"] or 0) >= 3, 15)
    assert "403" in gw.log_text()
    error_lines = [line for line in gw.log_text().splitlines() if " ERROR " in line]
    assert any("dd" in line and "HELD" in line and "403" in line for line in error_lines), \
        error_lines
    # Datadog saw the wrong key and nothing was stored there.
    assert datadog_intake.requests and {r.status for r in datadog_intake.requests} == {403}
    assert datadog_intake.stored_point_count() == 0
    status_text = gw.cli("status", "--config", str(gw.config_path))
    assert status_text.returncode == 1  # running, degraded
    assert "[held]" in status_text.stdout and "403" in status_text.stdout

    assert gw.stop() == 0
    # Stopped, the store still holds every reading for the sink.
    stored = gw.cli("status", "--json", "--config", str(gw.config_path))
    assert stored.returncode == 3  # not running
    offline = json.loads(stored.stdout)
    assert offline["running"] is False
    (dd,) = offline["sinks"]
    assert dd["name"] == "dd" and dd["backlog_rows"] >= 3
    assert offline["stored_rows"] >= 3
    assert "not running" in gw.cli("status", "--config", str(gw.config_path)).stdout

    # The key is a secret: not in the log, not in either status.
    for text in (gw.log_text(), status_text.stdout, status_text.stderr, stored.stdout,
                 stored.stderr):
        assert WRONG_KEY not in text
        assert WRONG_KEY[:12] not in text
