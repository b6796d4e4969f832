"""A message whose decoding raises is counted as `decoder_error`, kept, logged and acknowledged.

No payload is known to make decode() raise any more (tests/test_decoder_fuzz.py
looks for one); the guard is for the bug not found yet. To see it work, the
running gateway's decoder is given a fault for one payload, as the fault proxy
gives sinks theirs. Everything else is real: Mosquitto, the gateway on its
store, the file sink. The messages before and after the poison are stored, the
poison is counted and shown with its topic and first bytes, the log says what
raised, and the broker does not send the poison again after a restart.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from reliability.inprocess import GatewayThread, TestClock

SENSOR = "tele/plug1/SENSOR"
FLOOD = 15
POISON = b'{"ENERGY":{"Power":7},"poison":"' + b"\x01" * 300 + b'"}'


def _publish(client: mqtt.Client, topic: str, payload: bytes) -> None:
    client.publish(topic, payload, qos=1).wait_for_publish(5)


def _powers(path: Path) -> list[float]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted(line["value"] for line in lines if line["metric"] == "plug.power")


def _config(mosquitto: Any) -> dict[str, Any]:
    # Commits at once: the probes below count what arrived by what was committed.
    return {"gateway": {"name": "hall", "self_metrics_interval": 3600},
            "store": {"commit_interval": 0.05},
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            "devices": [{"id": "plug1", "profile": "tasmota", "topic": "plug1"}],
            "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}]}


def _subscribed(gw: GatewayThread, publisher: mqtt.Client) -> float:
    """Wait until the gateway's subscriptions are in place (it has connected, but its
    SUBSCRIBE may still be on the way): a known, ignored message gets through.
    Returns how many were received meanwhile."""
    for _ in range(20):
        _publish(publisher, "stat/plug1/RESULT", b'{"POWER":"ON"}')
        if gw.wait_for(lambda s: s["ingest"]["received"] >= 1, 1.0):
            time.sleep(0.3)  # a second probe still on its way is counted too
            return gw.status()["ingest"]["received"]
    raise AssertionError("the gateway never received a message")


def test_a_message_the_decoder_raises_on_is_counted_kept_logged_and_acknowledged(
        mosquitto, publisher, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    gw = GatewayThread(_config(mosquitto), tmp_path, TestClock(time.time()))
    decoder = gw.gateway.decoder
    real_decode = decoder.decode

    def faulty(topic: str, payload: bytes, received: float, kind: str = "mqtt") -> Any:
        if b"poison" in payload:
            raise KeyError("injected fault")
        return real_decode(topic, payload, received, kind)

    decoder.decode = faulty  # type: ignore[method-assign]
    gw.start()
    probes = _subscribed(gw, publisher)
    _publish(publisher, SENSOR, b'{"ENERGY":{"Power":1}}')
    _publish(publisher, SENSOR, POISON)
    _publish(publisher, SENSOR, b'{"ENERGY":{"Power":2}}')
    for _ in range(FLOOD):  # a flood of another kind must not push the poison out of sight
        _publish(publisher, SENSOR, b"{not json")
    readings = tmp_path / "data" / "readings.jsonl"  # relative paths are in data_dir
    assert gw.wait_for(lambda s: s["ingest"]["received"] >= probes + 3 + FLOOD, 20), \
        gw.status()["ingest"]
    assert gw.wait_for(lambda s: _powers(readings) == [1.0, 2.0], 20), gw.status()

    ingest = gw.status()["ingest"]
    assert ingest["undecodable"] == {"decoder_error": 1, "bad_json": FLOOD}, ingest
    assert ingest["decoded"] == 2 and ingest["received"] == probes + 3 + FLOOD, ingest
    assert ingest["ignored"] == probes, ingest
    kept, flood = ingest["recent_problems"]
    assert flood["reason"] == "bad_json" and flood["messages"] == FLOOD, flood
    assert kept["messages"] == 1
    assert kept["topic"] == SENSOR and kept["reason"] == "decoder_error"
    assert kept["bytes"] == len(POISON)
    assert kept["payload"].startswith("b'{\"ENERGY\":{\"Power\":7},\"poison\":\"\\x01\\x01")
    assert kept["payload"].endswith(f"(+{len(POISON) - 100} bytes)"), kept["payload"]
    assert "KeyError" in kept["detail"] and "injected fault" in kept["detail"]

    errors = [r for r in caplog.records if r.levelno == logging.ERROR
              and r.getMessage().startswith("decoder_error")]
    assert len(errors) == 1, [r.getMessage() for r in caplog.records]
    line = errors[0].getMessage()
    assert "KeyError" in line and repr(SENSOR) in line and "\\x01\\x01" in line
    assert "\x01" not in line  # escaped, so the journal shows it as it was
    assert errors[0].exc_info is not None  # with its traceback, to fix the bug
    gw.stop()

    # Acknowledged: the broker does not send the poison again to the restarted gateway.
    decoder.decode = real_decode  # type: ignore[method-assign]
    again = GatewayThread(_config(mosquitto), tmp_path, TestClock(time.time()))
    again.start()  # the session is kept by the broker: subscribed from the start
    _publish(publisher, SENSOR, b'{"ENERGY":{"Power":3}}')
    assert again.wait_for(lambda s: s["ingest"]["received"] >= 1, 20)
    time.sleep(1.0)  # a redelivered message would have arrived by now
    ingest = again.status()["ingest"]
    again.stop()
    assert ingest["received"] == 1 and ingest["decoded"] == 1, ingest
    assert ingest["undecodable"] == {}, ingest
    assert _powers(readings) == [1.0, 2.0, 3.0]
