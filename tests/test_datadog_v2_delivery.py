"""Readings travel Mosquitto -> gateway -> Datadog v2 intake (stand-in) intact.

Every point arrives with its tags, host and type in requests the official
datadog-api-client models accept; readings of one series within one second
become one point, combined as their type demands (gauge: last, count: sum,
rate: mean), even when they reach the sink in different batches.
"""

from __future__ import annotations

import itertools
import json
import re
import time

import paho.mqtt.client as mqtt
import pytest
from programs.ports import wait_until

DD_KEY = "test-dd-api-key"


def _config(mosquitto, intake, devices):
    return {
        "gateway": {"name": "hall", "tags": {"site": "kilnwick"},
                    "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": devices,
        "sinks": [{"name": "dd", "type": "datadog", "api_key": "${DD_API_KEY}",
                   "url": intake.url, "backoff_min": 0.2, "backoff_max": 1}],
    }


def _publish(client: mqtt.Client, topic: str, payload: str) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(5)


def test_every_reading_arrives_with_tags_host_and_type(mosquitto, datadog_intake, make_gateway,
                                                        publisher):
    gw = make_gateway(_config(mosquitto, datadog_intake, [
        {"id": "defib-socket", "profile": "tasmota", "topic": "defib_socket",
         "priority": "critical", "tags": {"room": "entrance"}},
    ]), env={"DD_API_KEY": DD_KEY})
    gw.start()
    _publish(publisher, "tele/defib_socket/SENSOR",
             '{"ENERGY":{"Power":38,"Voltage":238,"Current":0.218,"Total":512.417}}')
    _publish(publisher, "tele/defib_socket/STATE",
             '{"UptimeSec":266469,"POWER":"ON","Wifi":{"RSSI":76,"Signal":-62}}')
    expected = {"plug.power": 38, "plug.voltage": 238, "plug.current": 0.218,
                "plug.energy_total": 512.417, "device.uptime": 266469, "device.rssi": -62,
                "device.wifi_quality": 76, "plug.switch": 1}
    assert wait_until(lambda: all(datadog_intake.points(m) for m in expected), 20), \
        [r.status for r in datadog_intake.requests]

    tags = ("device:defib-socket", "gateway:hall", "host:hall", "room:entrance",
            "site:kilnwick")
    for metric, value in expected.items():
        (point,) = datadog_intake.points(metric)
        assert point[1] == pytest.approx(value), metric
        assert point[2] == tags, metric
        assert abs(point[0] - time.time()) < 60
    by_metric = {s["metric"]: s for s in datadog_intake.series()}
    assert {by_metric[m]["type"] for m in expected} == {"gauge"}
    assert by_metric["plug.power"]["resources"] == [{"type": "host", "name": "hall"}]

    # Every request was valid for the official models and within the limits.
    assert datadog_intake.requests
    assert {r.status for r in datadog_intake.requests} == {202}
    assert all(r.path == "/api/v2/series" for r in datadog_intake.requests)
    assert all(r.headers.get("Content-Encoding") == "deflate" for r in datadog_intake.requests)
    assert datadog_intake.dropped == []
    assert gw.wait_for(lambda s: s["sinks"][0]["state"] in ("ok", "idle")
                       and s["sinks"][0]["last_error"] == "", 5)
    assert gw.stop() == 0


def test_readings_of_one_second_are_combined_as_their_type_demands(
        mosquitto, datadog_intake, make_gateway, publisher):
    gw = make_gateway(_config(mosquitto, datadog_intake, [
        {"id": "door", "profile": "generic-json", "topic": "hall/door/events",
         "fields": {"temp": {"metric": "door.temperature", "unit": "°C"},
                    "opens": {"metric": "door.opens", "type": "count"},
                    "flow": {"metric": "door.airflow", "type": "rate"}}},
        {"id": "defib-socket", "profile": "tasmota", "topic": "defib_socket"},
    ]), env={"DD_API_KEY": DD_KEY})
    gw.start()

    # Seven messages a device sends within one second, spread over it so they
    # reach the sink in more than one batch (the forwarder polls twice a second).
    temps = [20.0, 20.5, 21.0, 21.5, 22.0, 22.5, 23.0]
    opens = [1, 2, 1, 3, 1, 1, 2]
    flows = [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]
    powers = [30, 31, 32, 33, 34, 35, 36]
    time.sleep(1.02 - time.time() % 1)  # start just after a second boundary
    for t, o, f, p in zip(temps, opens, flows, powers, strict=True):
        _publish(publisher, "hall/door/events", json.dumps({"temp": t, "opens": o, "flow": f}))
        _publish(publisher, "tele/defib_socket/SENSOR", json.dumps({"ENERGY": {"Power": p}}))
        time.sleep(0.08)

    def last(metric: str) -> float | None:
        points = datadog_intake.points(metric)
        return points[-1][1] if points else None

    def arrived() -> bool:
        return (sum(v for _, v, _ in datadog_intake.points("door.opens")) == sum(opens)
                and last("door.temperature") == temps[-1] and last("plug.power") == powers[-1])

    assert wait_until(arrived, 20), (
        datadog_intake.points("door.opens"), datadog_intake.points("door.temperature"))

    # One point per series per second at Datadog, and nothing lost by overwriting:
    # the count's points add up to every door opening.
    opens_points = datadog_intake.points("door.opens")
    temp_points = datadog_intake.points("door.temperature")
    flow_points = datadog_intake.points("door.airflow")
    power_points = datadog_intake.points("plug.power")
    assert sum(v for _, v, _ in opens_points) == sum(opens)
    assert temp_points[-1][1] == temps[-1]
    assert power_points[-1][1] == powers[-1]
    # Each second holds its own readings combined: the last temperature, the sum of
    # openings, the mean airflow. The burst is meant to fit in one second, but on a
    # slow machine it may straddle more; all three series split the same way.
    assert len(opens_points) == len(temp_points) == len(flow_points) <= 3
    groups = len(temp_points)
    got = [v for points in zip(temp_points, opens_points, flow_points, strict=True)
           for _, v, _ in points]

    def combined(cuts: tuple[int, ...]) -> list[float]:
        edges = [0, *cuts, len(temps)]
        return [v for a, b in itertools.pairwise(edges)
                for v in (temps[b - 1], sum(opens[a:b]), sum(flows[a:b]) / (b - a))]

    assert any(got == pytest.approx(combined(cuts))
               for cuts in itertools.combinations(range(1, len(temps)), groups - 1)), got
    assert {s["type"] for s in datadog_intake.series() if s["metric"].startswith("door.")} \
        == {"gauge", "count", "rate"}
    assert {r.status for r in datadog_intake.requests} == {202}

    # The combining is counted, so a user can see why points < readings.
    readings = 4 * len(temps)
    points = len(temp_points) + len(opens_points) + len(flow_points) + len(power_points)
    # The sink counts once the request is answered: the intake may hold the points a
    # moment before the gateway has counted them.
    pattern = re.compile(r'^gateway_sink_merged_total\{sink="dd"\} (\S+)$', re.MULTILINE)

    def merged() -> float | None:
        found = pattern.search(gw.metrics_text())
        return float(found.group(1)) if found else None

    assert wait_until(lambda: merged() == readings - points, 5), (merged(), readings - points)
    assert gw.stop() == 0
