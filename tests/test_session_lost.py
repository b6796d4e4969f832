"""A broker that has lost the gateway's session is a warning, counted, not a line of INFO.

The gateway keeps a persistent session so the broker queues what devices
publish while it is away. A broker restarted without its persistence file (or
one that expired the session) answers "no session": whatever was published for
the gateway meanwhile is gone. The gateway must say so at WARNING, with what it
means and what to check, and count it (`gateway.mqtt_session_lost`), on a
reconnect and on a start alike; the very first connect is legitimately new.
"""

from __future__ import annotations

import json
import re
import time

import paho.mqtt.client as mqtt


def session_lines(gw, level: str) -> list[str]:
    return [line for line in gw.log_text().splitlines()
            if f" {level} " in line and "session" in line]


def lost(gw, reason: str) -> float:
    found = re.search(rf'^gateway_mqtt_session_lost_total\{{reason="{reason}"\}} (\S+)$',
                      gw.metrics_text(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def connects(gw) -> float:
    found = re.search(r"^gateway_mqtt_connects_total (\S+)$", gw.metrics_text(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def forget_sessions(mosquitto) -> None:
    """Restart the broker without the persistence file its sessions were kept in."""
    mosquitto.stop()
    mosquitto.persistence_file.unlink()
    mosquitto.start()


def publish_once(mosquitto, topic: str, payload: str) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


def test_a_forgotten_session_is_warned_about_and_counted(mosquitto, make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "reconnect_min": 1,
                 "reconnect_max": 2},
        "devices": [{"id": "plug", "profile": "tasmota", "topic": "plug"}],
    })
    gw.start()  # the first connect ever: a new session is no loss
    assert any("new session: the first with this broker" in line
               for line in session_lines(gw, "INFO")), gw.log_text()
    assert gw.stop() == 0
    gw.start()  # a routine restart: the broker kept the session
    assert any("session resumed" in line for line in session_lines(gw, "INFO"))
    assert session_lines(gw, "WARNING") == []
    assert gw.status()["mqtt"]["sessions_lost"] == 0

    # The broker restarts without its sessions while the gateway runs: on reconnecting,
    # the gateway finds its session gone.
    before = connects(gw)
    forget_sessions(mosquitto)
    assert gw.wait_for(lambda s: connects(gw) > before and s["mqtt"]["connected"], 30)
    assert gw.wait_for(lambda s: s["mqtt"]["sessions_lost"] == 1, 10), gw.status()
    assert lost(gw, "forgotten") == 1
    [warning] = session_lines(gw, "WARNING")
    assert "had no session for gateway-hall" in warning
    assert "messages published for the gateway since then are lost" in warning
    assert "persistence true" in warning and "persistent_client_expiration" in warning
    shown = gw.cli("status", "--config", str(gw.config_path)).stdout
    assert "SESSION LOST 1 time(s)" in shown, shown

    # The same while the gateway is stopped: known on the next start from the record it
    # keeps in its data folder. A reading published in between is gone for good.
    assert gw.stop() == 0
    forget_sessions(mosquitto)
    publish_once(mosquitto, "tele/plug/SENSOR", json.dumps({"ENERGY": {"Power": 5}}))
    gw.start()
    assert gw.wait_for(lambda s: s["mqtt"]["sessions_lost"] == 1, 10), gw.status()
    assert lost(gw, "forgotten") == 1
    assert len(session_lines(gw, "WARNING")) == 2
    time.sleep(1)
    assert gw.status()["ingest"]["received"] == 0  # what the warning said: nothing queued
    assert gw.stop() == 0


def test_a_session_that_expired_while_away_is_warned_about(mosquitto, make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "session_expiry": 2},
        "devices": [{"id": "plug", "profile": "tasmota", "topic": "plug"}],
    })
    gw.start()
    assert gw.stop() == 0
    time.sleep(4)  # longer than mqtt.session_expiry: the broker drops the session
    gw.start()
    assert gw.wait_for(lambda s: s["mqtt"]["sessions_lost"] == 1, 10), gw.status()
    assert lost(gw, "expired") == 1
    [warning] = session_lines(gw, "WARNING")
    assert "longer than mqtt.session_expiry (2 s)" in warning
    assert "Raise mqtt.session_expiry" in warning
    assert gw.stop() == 0
