"""ESPHome state topics carry no unit: a node's Home Assistant discovery configs
(retained on homeassistant/<component>/<node>/<object_id>/config, ESPHome's default,
with abbreviated keys unless use_abbreviations is off) give each sensor's unit to its
readings; a sensor with no config keeps none.

Real Mosquitto, a real gateway process, the file sink.
"""

from __future__ import annotations

import json
import time

# As ESPHome sends it by default (mqtt: use_abbreviations: true): Home Assistant's
# abbreviated keys.
FLOW = {"dev_cla": "temperature", "unit_of_meas": "°C", "stat_cla": "measurement",
        "name": "Flow temperature", "stat_t": "hall-heating/sensor/flow_temperature/state",
        "avty_t": "hall-heating/status", "uniq_id": "ESPsensorflow_temperature",
        "dev": {"ids": "a4cf12b3c4d5", "name": "hall-heating"}}
# With use_abbreviations: false, the full names.
RETURN = {"device_class": "temperature", "unit_of_measurement": "°C",
          "state_class": "measurement", "name": "Return temperature",
          "state_topic": "hall-heating/sensor/return_temperature/state",
          "unique_id": "ESPsensorreturn_temperature",
          "device": {"identifiers": "a4cf12b3c4d5", "name": "hall-heating"}}


def test_a_discovery_config_gives_its_sensor_a_unit(mosquitto, make_gateway, publisher):
    for name, config in (("flow_temperature", FLOW), ("return_temperature", RETURN)):
        publisher.publish(f"homeassistant/sensor/hall-heating/{name}/config",
                          json.dumps(config), qos=1, retain=True).wait_for_publish(5)
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "devices": [{"id": "heating", "profile": "esphome", "node": "hall-heating"}],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    })
    gw.start()
    try:
        for topic, payload in (("hall-heating/sensor/flow_temperature/state", "48.6"),
                               ("hall-heating/sensor/return_temperature/state", "41.2"),
                               ("hall-heating/sensor/wifi_signal/state", "-61")):
            publisher.publish(topic, payload, qos=1).wait_for_publish(5)
        out = gw.data_dir / "readings.jsonl"
        deadline = time.monotonic() + 15
        got: dict[str, tuple[float, str]] = {}
        while len(got) < 3 and time.monotonic() < deadline:
            if out.exists():
                got = {r["metric"]: (r["value"], r["unit"])
                       for r in map(json.loads, out.read_text().splitlines())
                       if r["metric"].startswith("sensor.")}
            time.sleep(0.1)
        assert got == {"sensor.flow_temperature": (48.6, "°C"),
                       "sensor.return_temperature": (41.2, "°C"),
                       "sensor.wifi_signal": (-61.0, "")}, got
    finally:
        gw.stop()
