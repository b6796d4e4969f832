"""Ingest counters add up: one message, one outcome, and `received` is their sum.

A message is counted once: decoded, partly decoded (some readings, some values
that could not be read), ignored, or undecodable under the reason of its first
problem, however many values in it were bad. The values a partly decoded
message could not give are counted apart, by reason, in `field_problems`
(values, not messages: not part of the sum). /status, /metrics and `gateway
status` say the same.
"""

from __future__ import annotations

import json
import re

import paho.mqtt.client as mqtt

SENSOR = "tele/plug1/SENSOR"
MESSAGES = [
    # (topic, payload, outcome, reason)
    (SENSOR, b'{"ENERGY":{"Power":38,"Voltage":230}}', "decoded", ""),
    (SENSOR, b'{"ENERGY":{"Power":39}}', "decoded", ""),
    # Power is read; Voltage and Current are not: one message, partly decoded.
    (SENSOR, b'{"ENERGY":{"Power":40,"Voltage":"x","Current":NaN}}', "partly_decoded", ""),
    # Two bad values, nothing read: one undecodable message, not two.
    (SENSOR, b'{"ENERGY":{"Power":NaN,"Voltage":Infinity}}', "undecodable", "not_finite"),
    ("stat/plug1/RESULT", b'{"POWER":"ON"}', "ignored", ""),
    (SENSOR, b'{"ENERGY":', "undecodable", "bad_json"),
    ("stat/plug1/POWER", b"MAYBE", "undecodable", "unknown_value"),
    # true is not a number of watts; the relay's ON is a state.
    (SENSOR, b'{"ENERGY":{"Power":true}}', "undecodable", "wrong_type"),
]


def _publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(5)


def test_each_message_is_counted_once_and_the_outcomes_add_up_to_received(
        mosquitto, make_gateway, publisher):
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "plug1", "profile": "tasmota", "topic": "plug1"}],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    })
    gw.start()
    for topic, payload, _, _ in MESSAGES:
        _publish(publisher, topic, payload)
    assert gw.wait_for(lambda s: s["ingest"]["received"] >= len(MESSAGES), 20), gw.status()

    ingest = gw.status()["ingest"]
    assert ingest["received"] == len(MESSAGES)
    assert ingest["decoded"] == 2
    assert ingest["partly_decoded"] == 1
    assert ingest["ignored"] == 1
    assert ingest["undecodable"] == {"not_finite": 1, "bad_json": 1, "unknown_value": 1,
                                     "wrong_type": 1}
    assert ingest["received"] == (ingest["decoded"] + ingest["partly_decoded"]
                                  + ingest["ignored"] + sum(ingest["undecodable"].values()))
    assert ingest["field_problems"] == {"wrong_type": 1, "not_finite": 1}
    # What was read reached the sink: Power and Voltage, Power, Power.
    readings = gw.data_dir / "readings.jsonl"
    assert gw.wait_for(lambda s: s["sinks"][0]["backlog_rows"] == 0, 20)
    plug = sorted((r["metric"], r["value"]) for r in map(json.loads, readings.open())
                  if r["metric"].startswith("plug."))
    assert plug == [("plug.power", 38), ("plug.power", 39), ("plug.power", 40),
                    ("plug.voltage", 230)]

    metrics = gw.metrics_text()
    for line in ("gateway_received_total 8", "gateway_decoded_total 2",
                 "gateway_partly_decoded_total 1", "gateway_ignored_total 1",
                 'gateway_undecodable_total{reason="not_finite"} 1',
                 'gateway_undecodable_total{reason="wrong_type"} 1',
                 'gateway_field_problems_total{reason="wrong_type"} 1',
                 'gateway_field_problems_total{reason="not_finite"} 1'):
        assert re.search(rf"^{re.escape(line)}(\.0)?$", metrics, re.MULTILINE), (line, metrics)

    shown = gw.cli("status", "--config", str(gw.config_path))
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"ingest: received 8 messages, decoded 2, partly decoded 1, ignored 1, "
                     r"retained 0, undecodable 4; stored \d+ readings", shown.stdout), \
        shown.stdout
    assert "undecodable not_finite: 1" in shown.stdout
    assert "values not read in partly decoded messages, wrong_type: 1" in shown.stdout
    assert gw.stop() == 0
