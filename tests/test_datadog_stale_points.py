"""A backlog older than an hour meets Datadog's timestamp window by an explicit policy.

Datadog accepts points more than 1 h old with 202 and then silently drops them,
unless the metric has historical ingestion. A gateway whose internet link was
down for two hours has exactly such a backlog. With `historical: false` the
gateway never sends those points: they go to the dead-letter table (or are
dropped, with `stale: drop`) and are counted where the user looks. With
`historical: true` they are sent as they are.

The two-hour-old backlog is made honestly: the gateway first runs with its
clock two hours behind (a `sitecustomize` shifts `time.time` before the
gateway is imported) while its Datadog link is down, then runs again with the
real clock and the link up, on the same store.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from paho.mqtt import publish
from programs.ports import LOOPBACK, free_port

DD_KEY = "test-dd-api-key"
TWO_HOURS = 7200.0

_CLOCK_SHIM = '''\
"""Test shim: shift the process's wall clock by GATEWAY_TEST_CLOCK_SHIFT seconds."""
import os
import time

_shift = float(os.environ.get("GATEWAY_TEST_CLOCK_SHIFT") or 0)
if _shift:
    _time, _time_ns = time.time, time.time_ns
    time.time = lambda: _time() + _shift
    time.time_ns = lambda: _time_ns() + int(_shift * 1e9)
'''


def _config(mosquitto, data_dir: Path, url: str, every: float = 3600, **sink) -> dict:
    return {
        "gateway": {"name": "hall", "data_dir": str(data_dir), "self_metrics_interval": every},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "defib-socket", "profile": "tasmota", "topic": "defib_socket"}],
        "sinks": [{"name": "dd", "type": "datadog", "api_key": DD_KEY, "url": url,
                   "backoff_min": 0.2, "backoff_max": 1, **sink}],
    }


def _old_backlog(make_gateway, mosquitto, tmp_path: Path, **sink) -> tuple[Path, float]:
    """Readings stored two hours ago (by the gateway's clock) while Datadog was unreachable."""
    shim = tmp_path / "clockshim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(_CLOCK_SHIM)
    data_dir = tmp_path / "store"
    unreachable = f"http://{LOOPBACK}:{free_port()}"
    old = make_gateway(_config(mosquitto, data_dir, unreachable, **sink), env={
        "GATEWAY_TEST_CLOCK_SHIFT": str(-TWO_HOURS),
        "PYTHONPATH": f"{shim}:{Path(__file__).resolve().parents[1]}",
    })
    old.start()
    for power in (38, 39, 40):
        publish.single("tele/defib_socket/SENSOR",
                       json.dumps({"ENERGY": {"Power": power, "Voltage": 238}}), qos=1,
                       hostname=mosquitto.host, port=mosquitto.port)
    assert old.wait_for(lambda s: s["ingest"]["stored"] >= 6
                        and s["sinks"][0]["state"] == "retrying", 15), old.status()
    status = old.status()
    assert status is not None and status["uptime"] < 600  # its clock was consistent
    assert old.stop() == 0
    return data_dir, time.time() - TWO_HOURS


@pytest.mark.parametrize("policy", ["dead_letter", "drop"])
def test_without_historical_ingestion_old_points_are_set_aside_and_counted(
        policy, mosquitto, datadog_intake, make_gateway, tmp_path):
    data_dir, _ = _old_backlog(make_gateway, mosquitto, tmp_path, stale=policy)

    # self-metrics every second: the running status refreshes its store figures then
    gw = make_gateway(_config(mosquitto, data_dir, datadog_intake.url, every=1, stale=policy))
    gw.start()
    publish.single("tele/defib_socket/SENSOR", '{"ENERGY":{"Power":41,"Voltage":239}}', qos=1,
                   hostname=mosquitto.host, port=mosquitto.port)
    assert gw.wait_for(lambda s: s["sinks"][0]["dropped"].get("too_old", 0) >= 6, 20), \
        gw.status()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not datadog_intake.points("plug.voltage"):
        time.sleep(0.1)

    # Only the fresh reading went to Datadog; nothing was sent for it to drop silently.
    assert [v for _, v, _ in datadog_intake.points("plug.power")] == [41]
    assert [v for _, v, _ in datadog_intake.points("plug.voltage")] == [239]
    assert datadog_intake.dropped == []
    assert all(r.status == 202 for r in datadog_intake.requests)

    sink = gw.sink("dd")
    too_old = sink["dropped"]["too_old"]
    assert too_old >= 6  # the six old plug readings, and the old gateway's self-metrics
    metrics = gw.metrics_text()
    assert f'gateway_dropped_total{{reason="too_old",sink="dd"}} {too_old:g}' in metrics
    # The running status also shows what the store keeps account of.
    kept = "dead_letters" if policy == "dead_letter" else "losses_total"
    assert gw.wait_for(lambda s: s[kept].get("dd/too_old") == too_old, 10), gw.status()
    shown = gw.cli("status", "--config", str(gw.config_path))
    assert shown.returncode == 0
    assert f"dropped too_old: {too_old:.0f}" in shown.stdout
    assert gw.stop() == 0

    # Stopped: the store still says what was set aside, and where.
    offline = gw.cli("status", "--config", str(gw.config_path))
    assert offline.returncode == 3 and "not running" in offline.stdout
    dead = re.search(r"dead letters\b[^\n]*\bdd/too_old: (\d+)", offline.stdout)
    if policy == "dead_letter":
        assert dead is not None and int(dead.group(1)) == too_old, offline.stdout
    else:
        assert dead is None, offline.stdout
        assert f"dropped too_old: {too_old:.0f}" in offline.stdout


def test_with_historical_ingestion_old_points_are_sent_as_they_are(mosquitto, datadog_intake,
                                                                  make_gateway, tmp_path):
    datadog_intake.historical_metrics = {"plug.power", "plug.voltage"}
    data_dir, then = _old_backlog(make_gateway, mosquitto, tmp_path, historical=True)

    gw = make_gateway(_config(mosquitto, data_dir, datadog_intake.url, historical=True))
    gw.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(datadog_intake.points("plug.voltage")) < 1:
        time.sleep(0.1)

    power = datadog_intake.points("plug.power")
    assert power, gw.status()
    # Stored at Datadog with their own (two-hour-old) timestamps, the last value per second.
    assert all(abs(ts - then) < 120 for ts, _, _ in power), (power, then)
    assert power[-1][1] == 40
    assert {v for _, v, _ in datadog_intake.points("plug.voltage")} == {238}
    assert not [d for d in datadog_intake.dropped if d.point.metric.startswith("plug.")]
    assert gw.wait_for(lambda s: s["sinks"][0]["backlog_rows"] == 0
                       or s["sinks"][0]["delivered"] >= 6, 10)
    assert "too_old" not in gw.sink("dd")["dropped"]
    assert gw.stop() == 0
