"""Units learned from the devices themselves: Zigbee2MQTT's retained bridge/devices
describes a soil sensor the profile does not know; its unknown keys then arrive with
the bridge's units, an enum's words as their place in its list, and a contradiction
with the profile's own fields is logged once while the profile's unit is kept.

Real Mosquitto, a real gateway process, the file sink; bridge/devices published
retained before the gateway starts, as Zigbee2MQTT leaves it on the broker.
"""

from __future__ import annotations

import json
import time

# The shape of Zigbee2MQTT 2.x's bridge/devices entries (exposes with features,
# numeric and enum properties), for a soil sensor and the coordinator.
BRIDGE_DEVICES = [
    {"ieee_address": "0x00124b0000000000", "type": "Coordinator",
     "friendly_name": "Coordinator", "definition": None},
    {"ieee_address": "0xa4c1380000000001", "type": "EndDevice",
     "friendly_name": "garden/soil", "supported": True,
     "definition": {"model": "TS0601_soil", "vendor": "Tuya",
                    "exposes": [
                        {"type": "numeric", "name": "temperature", "property": "temperature",
                         "access": 1, "unit": "°F"},
                        {"type": "numeric", "name": "soil_moisture",
                         "property": "soil_moisture", "access": 1, "unit": "%",
                         "value_min": 0, "value_max": 100},
                        {"type": "enum", "name": "battery_state", "property": "battery_state",
                         "access": 1, "values": ["low", "middle", "high"]},
                        {"type": "composite", "name": "calibration",
                         "property": "calibration", "access": 2,
                         "features": [{"type": "numeric", "name": "offset",
                                       "property": "offset", "unit": "mV"}]},
                        {"type": "numeric", "name": "linkquality",
                         "property": "linkquality", "access": 1, "unit": "lqi"}]}},
]


def readings(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def soil_gateway(mosquitto, make_gateway, publisher):
    """A gateway reading the soil sensor, bridge/devices on the broker retained before it
    starts (as Zigbee2MQTT leaves it)."""
    publisher.publish("zigbee2mqtt/bridge/devices", json.dumps(BRIDGE_DEVICES), qos=1,
                      retain=True).wait_for_publish(5)
    return make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "devices": [{"id": "soil", "profile": "zigbee2mqtt", "friendly_name": "garden/soil"}],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    })


def test_unknown_keys_get_the_bridges_units_and_enums(mosquitto, make_gateway, publisher):
    gw = soil_gateway(mosquitto, make_gateway, publisher)
    gw.start()
    try:
        publisher.publish("zigbee2mqtt/garden/soil", json.dumps(
            {"soil_moisture": 41, "battery_state": "high", "temperature": 64.4,
             "linkquality": 120}), qos=1).wait_for_publish(5)
        out = gw.data_dir / "readings.jsonl"
        deadline = time.monotonic() + 15
        while len(readings(out)) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        got = {r["metric"]: (r["value"], r["unit"]) for r in readings(out)}
        assert got["zigbee.soil_moisture"] == (41.0, "%"), got
        assert got["zigbee.battery_state"] == (2.0, ""), got  # "high" of low, middle, high
        # The profile's own field wins over the bridge's °F, and says so once.
        assert got["climate.temperature"] == (64.4, "°C"), got
        assert got["device.linkquality"] == (120.0, "lqi"), got
        said = "zigbee2mqtt/bridge/devices says temperature is in °F"
        assert gw.wait_for_log(said, 5), gw.log_text()
        assert gw.log_text().count("bridge/devices says temperature") == 1
        status = gw.status() or {}
        assert not (status.get("ingest") or {}).get("undecodable"), status.get("ingest")
    finally:
        gw.stop()


def test_what_the_bridge_said_is_remembered_across_a_restart(mosquitto, make_gateway,
                                                            publisher):
    gw = soil_gateway(mosquitto, make_gateway, publisher)
    gw.start()
    assert gw.wait_for(lambda s: (gw.data_dir / "learned.json").exists(), 10)
    gw.stop()
    # Gone from the broker meanwhile (or not yet delivered again when the first
    # readings come): the gateway still knows the soil sensor's units.
    publisher.publish("zigbee2mqtt/bridge/devices", b"", qos=1, retain=True).wait_for_publish(5)
    gw.start()
    try:
        publisher.publish("zigbee2mqtt/garden/soil", json.dumps({"soil_moisture": 38}),
                          qos=1).wait_for_publish(5)
        out = gw.data_dir / "readings.jsonl"
        deadline = time.monotonic() + 15
        while not any(r["metric"] == "zigbee.soil_moisture" for r in readings(out)) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        got = [(r["value"], r["unit"]) for r in readings(out)
               if r["metric"] == "zigbee.soil_moisture"]
        assert got == [(38.0, "%")], got
    finally:
        gw.stop()
