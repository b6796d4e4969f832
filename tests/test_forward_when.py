"""A sink told to forward only while the van is parked (forward_when) keeps everything in
the store while it drives, says why in status, and sends it all once it stops: nothing
lost, nothing sent early. The same sink's config mistakes are named.

Real programs: Mosquitto, a gateway process, VictoriaMetrics.
"""

from __future__ import annotations

import json
import time

import pytest

from gateway.config.load import parse_config
from gateway.config.validate import ConfigError


def test_a_sink_waits_while_the_van_drives_and_sends_everything_once_parked(
        mosquitto, victoria, make_gateway, publisher):
    gw = make_gateway({
        "gateway": {"name": "van-1", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "devices": [{"id": "van", "profile": "generic-json", "topic": "van/state",
                     "fields": {"ignition": {"quantity": "ignition"},
                                "speed": {"metric": "vehicle.speed", "unit": "km/h"}}}],
        "sinks": [{"name": "depot", "type": "influx", "url": victoria.url,
                   "forward_when": {"metric": "vehicle.ignition", "device": "van",
                                    "equals": 0}}],
        # The readings of a trip carry its tag: still the same ignition to the condition.
        "trips": {"ignition": "van"},
    })
    gw.start()
    speeds = [float(v) for v in range(30, 60, 3)]
    # Parked first (the condition holds), then the trip.
    publisher.publish("van/state", json.dumps({"ignition": 0}), qos=1).wait_for_publish(5)
    assert gw.wait_for(lambda s: s["sinks"][0]["state"] in ("ok", "idle"), 10)
    for n, speed in enumerate(speeds):
        payload = {"ignition": 1, "speed": speed} if n else {"ignition": 1}
        publisher.publish("van/state", json.dumps(payload), qos=1).wait_for_publish(5)
    assert gw.wait_for(lambda s: s["sinks"][0]["state"] == "waiting"
                       and s["sinks"][0]["backlog_rows"] >= len(speeds), 15), gw.status()
    sink = gw.status()["sinks"][0]
    assert sink["last_error"] == ("waiting: vehicle.ignition of van is 1 (sends while "
                                  "vehicle.ignition of van is 0)"), sink
    done = gw.cli("status", "--config", str(gw.config_path))
    assert done.returncode == 0, done.stdout  # waiting by design is not trouble
    assert "depot [waiting]" in done.stdout and "(forward_when)" in done.stdout
    time.sleep(1.0)
    assert victoria.sample_count('{__name__="vehicle_speed"}') == 0  # nothing sent early

    publisher.publish("van/state", json.dumps({"ignition": 0, "speed": 0}),
                      qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and \
            victoria.sample_count('{__name__="vehicle_speed"}') < len(speeds):
        time.sleep(0.2)
    sent = sorted(v for item in victoria.export('{__name__="vehicle_speed"}')
                  for v in item["values"])
    assert sent == sorted([*speeds[1:], 0.0]), sent
    assert gw.wait_for(lambda s: s["sinks"][0]["state"] in ("ok", "idle"), 10)
    assert gw.wait_for_log("sink depot: forwarding again", 5)


def test_a_condition_needs_a_metric_and_device_with_one_test():
    with pytest.raises(ConfigError) as caught:
        parse_config("gateway: {name: van}\nsinks:\n"
                     "  - {name: depot, type: file, forward_when: {metric: vehicle.ignition,"
                     " equals: 0, below: 1}}\n"
                     "  - {name: night, type: file, path: b.jsonl, forward_when: "
                     "{during: ['Mon-Fry 18:00-08:00']}}\n", "gateway.yaml")
    message = str(caught.value)
    assert "sinks[0].forward_when.metric" in message and "device" in message, message
    assert "sinks[0].forward_when.equals" in message, message
    assert "sinks[1].forward_when.during[0]" in message and "weekly window" in message
