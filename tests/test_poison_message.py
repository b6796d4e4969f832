"""A poison message between two good ones: neither good one is lost, the poison is counted.

Each payload here once raised out of the decoder (or the store's append) and
ended the ingest thread: the process looked alive, nothing more was
acknowledged, and after a restart the broker sent the same message again. Sent
through a real Mosquitto to a real gateway process, each is now counted under
its reason, shown in `/status` with its topic and first bytes, and
acknowledged; the good messages around it reach the file sink.
"""

from __future__ import annotations

import json
from pathlib import Path

import paho.mqtt.client as mqtt

SENSOR = "tele/plug1/SENSOR"
DEEP = 1000  # about what the fuzzing found; orjson takes up to 1024 levels

# (topic, payload, outcome, reason): the outcome each poison is counted under now.
POISONS = [
    # NaN sends the payload to Python's parser, which made the 400-digit integer an
    # int that overflowed float().
    (SENSOR, b'{"ENERGY":{"Power":NaN,"Voltage":' + b"9" * 400 + b"}}",
     "undecodable", "not_finite"),
    # Python's parser recursed past the interpreter's limit.
    (SENSOR, b'{"nan":NaN,"ENERGY":' + b"[" * 1500 + b"]" * 1500 + b"}",
     "undecodable", "bad_json"),
    # orjson reads it; the field walk recursed once per level.
    (SENSOR, b'{"ENERGY":{"Power":' + b"[" * DEEP + b"1" + b"]" * DEEP + b"}}",
     "undecodable", "wrong_type"),
    # The `when: method` rule took str() of it, recursing once per level.
    ("shelly-hall/events/rpc", b'{"method":' + b"[" * DEEP + b"]" * DEEP + b',"params":{}}',
     "ignored", ""),
    # A lone surrogate key became the metric zigbee.\ud800, which the store's append
    # could not encode: the whole batch failed. Its link quality is still read.
    ("zigbee2mqtt/hall/bulb", b'{"\\ud800":1,"linkquality":50}', "partly_decoded", ""),
    # 30,000 readings from one 60 KB message.
    (SENSOR, b'{"ENERGY":{"Power":[' + b"1," * 29999 + b"1]}}",
     "undecodable", "too_many_readings"),
    # An empty topic level made the metric "boiler.".
    ("hall/boiler//state", b"61.5", "undecodable", "bad_name"),
    # true is no number of watts.
    (SENSOR, b'{"ENERGY":{"Power":true}}', "undecodable", "wrong_type"),
]


def _publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(5)


def _good(n: int) -> bytes:
    return json.dumps({"ENERGY": {"Power": n}}).encode()


def _powers(path: Path) -> list[float]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(line["value"] for line in lines if line["metric"] == "plug.power")


def test_poison_messages_are_counted_and_acknowledged_and_good_ones_around_them_stored(
        mosquitto, make_gateway, publisher):
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [
            {"id": "plug1", "profile": "tasmota", "topic": "plug1"},
            {"id": "bulb", "profile": "zigbee2mqtt", "friendly_name": "hall/bulb"},
            {"id": "shelly", "profile": "shelly", "prefix": "shelly-hall"},
            {"id": "boiler", "profile": "generic-json", "topic": "hall/boiler/{part}/state",
             "fields": {"": "boiler.{part}"}},
        ],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    })
    gw.start()
    _publish(publisher, SENSOR, _good(1))
    for i, (topic, payload, _, _) in enumerate(POISONS):
        _publish(publisher, topic, payload)
        _publish(publisher, SENSOR, _good(i + 2))
    sent = 1 + 2 * len(POISONS)
    goods = [float(n) for n in range(1, len(POISONS) + 2)]
    readings = gw.data_dir / "readings.jsonl"

    assert gw.wait_for(lambda s: s["ingest"]["received"] >= sent, 30), gw.log_text()[-3000:]
    assert gw.wait_for(lambda s: s["sinks"][0]["backlog_rows"] == 0
                       and readings.exists() and _powers(readings) == goods, 20), \
        (readings.read_text() if readings.exists() else "no file", gw.status())
    assert gw.running

    ingest = gw.status()["ingest"]
    undecodable: dict[str, float] = {}
    for _, _, outcome, reason in POISONS:
        if outcome == "undecodable":
            undecodable[reason] = undecodable.get(reason, 0) + 1
    assert ingest["undecodable"] == undecodable, ingest
    assert ingest["ignored"] == 1 and ingest["partly_decoded"] == 1, ingest
    assert ingest["field_problems"] == {"bad_name": 1}, ingest
    assert ingest["decoded"] == len(goods), ingest
    assert ingest["received"] == sent, ingest
    lines = [json.loads(line) for line in readings.read_text().splitlines()]
    assert [r["value"] for r in lines if r["metric"] == "device.linkquality"] == [50]
    assert not [r for r in lines if r["metric"].startswith(("zigbee.", "boiler."))], lines

    # The last poisons are kept for inspection: topic, reason and the first bytes, escaped.
    recent = ingest["recent_problems"]
    assert [(p["topic"], p["reason"]) for p in recent[-3:]] == [
        (SENSOR, "too_many_readings"), ("hall/boiler//state", "bad_name"),
        (SENSOR, "wrong_type")], recent
    assert recent[-3]["payload"].startswith("b'{\"ENERGY\":{\"Power\":[1,1,")
    assert len(recent[-3]["payload"]) < 200 and recent[-3]["bytes"] == len(POISONS[5][1])
    # Kept by topic and reason: the two wrong_type messages on SENSOR are one entry.
    assert recent[-1]["messages"] == 2 and recent[-1]["payload"] == repr(POISONS[-1][1])

    # Logged as warnings naming the topic; no traceback, no decoder_error.
    log = gw.log_text()
    assert "Traceback" not in log and "decoder_error" not in log, log[-3000:]
    for reason in undecodable:
        assert any(reason in line and " WARNING " in line for line in log.splitlines()), reason

    # Every message was acknowledged: after a restart the broker sends none of them again.
    assert gw.stop() == 0
    gw.start()
    _publish(publisher, SENSOR, _good(100))
    assert gw.wait_for(lambda s: s["ingest"]["stored"] >= 1, 20)
    ingest = gw.status()["ingest"]
    assert ingest["received"] == 1 and ingest["undecodable"] == {}, ingest
    assert gw.stop() == 0
