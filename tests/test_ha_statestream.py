"""Any Home Assistant entity as a metric of its own, through mqtt_statestream: its
state (numbers as themselves, on/off as 1/0), its unit from the unit_of_measurement
attribute, its entity id as a tag; unavailable is no value and no problem; a word no
rule reads and bytes that are not text are counted, the rest carries on.

Real Mosquitto, a real gateway process, the file sink; payloads in the forms
mqtt_statestream publishes (states as plain text, attributes JSON-encoded).
"""

from __future__ import annotations

import json


def test_entities_become_metrics_with_their_units(mosquitto, make_gateway, publisher):
    publisher.publish("homeassistant/sensor/hall_temperature/unit_of_measurement", '"°C"',
                      qos=1, retain=True).wait_for_publish(5)
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "devices": [{"id": "home-assistant", "profile": "ha-statestream"}],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    })
    gw.start()
    for topic, payload in (
            ("homeassistant/sensor/hall_temperature/friendly_name", '"Hall temperature"'),
            ("homeassistant/sensor/hall_temperature/last_changed",
             '"2026-12-02T10:00:00.000000+00:00"'),
            ("homeassistant/sensor/hall_temperature/state", "unavailable"),
            ("homeassistant/sensor/hall_temperature/state", "19.4"),
            ("homeassistant/switch/kitchen_urn/state", "on"),
            ("homeassistant/weather/home/state", "sunny"),
            ("homeassistant/sensor/garbage/state", b"\xff\xfe"),
            ("homeassistant/binary_sensor/hall_door/state", "off")):
        publisher.publish(topic, payload, qos=1).wait_for_publish(5)
    out = gw.data_dir / "readings.jsonl"

    def got() -> dict:
        if not out.exists():
            return {}
        return {r["metric"]: r for r in map(json.loads, out.read_text().splitlines())
                if not r["metric"].startswith("gateway.")}

    assert gw.wait_for(lambda s: len(got()) >= 3 and s["ingest"]["received"] >= 8, 15), got()
    readings = got()
    temp = readings["sensor.hall_temperature"]
    assert (temp["value"], temp["unit"], temp["tags"]["entity_id"]) == \
        (19.4, "°C", "sensor.hall_temperature")
    assert readings["switch.kitchen_urn"]["value"] == 1.0
    assert readings["binary_sensor.hall_door"]["value"] == 0.0
    assert set(readings) == {"sensor.hall_temperature", "switch.kitchen_urn",
                             "binary_sensor.hall_door"}
    ingest = gw.status()["ingest"]
    assert ingest["undecodable"] == {"unknown_value": 1, "not_utf8": 1}, ingest
    assert ingest["ignored"] >= 3  # unavailable, friendly_name, last_changed
