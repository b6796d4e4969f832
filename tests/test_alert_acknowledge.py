""""I'm on it" stops the reminders: acknowledged over the local broker's command topic or
the status port's HTTP endpoint (bearer token), recorded with who it was; and the open
alerts stay on the broker, retained, for a hall display when no channel reaches anyone.

A real gateway process, real Mosquitto, Apprise posting to a local webhook.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt
from programs.webhook import Webhook

TOKEN = "hall-ack-token-0123456789"


def publish(client, topic: str, payload: object) -> None:
    client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)


def post(port: int, path: str, token: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def retained(host: str, port: int, topic: str) -> object:
    """What a display subscribing now receives on `topic`."""
    got: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    client.connect(host, port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    client.disconnect()
    return json.loads(got[0]) if got else None


def test_acknowledged_alerts_stop_reminding_and_the_board_shows_them(mosquitto, make_gateway,
                                                                     publisher):
    hook = Webhook()
    hook.start()
    reminder = {"renotify_interval": "2s", "notify": ["ann"]}
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "devices": [{"id": "urn", "profile": "tasmota", "topic": "urn"},
                    {"id": "defib-socket", "profile": "tasmota", "topic": "defib"}],
        "people": [{"name": "ann", "channels": [hook.url("ann")]}],
        "monitors": [
            {"name": "urn-left-on", "type": "threshold", "metric": "plug.power",
             "aggregation": "last", "critical": 2000, "devices": ["urn"],
             "message": "urn {{#is_renotify}}still {{/is_renotify}}on", **reminder},
            {"name": "defib-power", "type": "state", "metric": "plug.power", "below": 5,
             "duration": "0s", "devices": ["defib-socket"],
             "message": "defib {{#is_renotify}}still {{/is_renotify}}off", **reminder}],
        "alerting": {"ack_token": TOKEN},
    })
    gw.start()
    try:
        publish(publisher, "tele/urn/SENSOR", {"ENERGY": {"Power": 2400}})
        publish(publisher, "tele/defib/SENSOR", {"ENERGY": {"Power": 0}})
        hook.wait("/ann", 4, 15)
        assert {"urn on", "urn still on", "defib off", "defib still off"} <= \
            set(hook.messages("/ann")), hook.messages("/ann")
        board = retained(mosquitto.host, mosquitto.port, "gateway/hall/alerts")
        assert {(a["monitor"], a["status"]) for a in board} == {
            ("urn-left-on", "ALERT"), ("defib-power", "ALERT")}, board
        ids = {a["monitor"]: a["id"] for a in board}

        # ann, on the hall's display, acknowledges the urn over MQTT
        publish(publisher, "gateway/hall/alerts/ack", {"id": ids["urn-left-on"], "by": "ann"})
        assert gw.wait_for_log("acknowledged by ann (via mqtt)", 10), gw.log_text()
        # bob from his phone, with a wrong token first
        status, said = post(gw.http_port, f"/alerts/{ids['defib-power']}/ack", "wrong",
                            {"by": "bob"})
        assert status == 401 and "token" in said["error"]
        status, said = post(gw.http_port, f"/alerts/{ids['defib-power']}/ack", TOKEN,
                            {"by": "bob"})
        assert status == 200 and "acknowledged by bob" in said["result"], said
        status, _ = post(gw.http_port, "/alerts/9999/ack", TOKEN, {})
        assert status == 404

        counted = len(hook.messages("/ann"))
        time.sleep(4.5)  # two reminder intervals: nothing more
        assert len(hook.messages("/ann")) == counted, hook.messages("/ann")[counted:]

        listing = gw.cli("alerts", "list", "--config", str(gw.config_path)).stdout
        assert "acknowledged by ann" in listing and "acknowledged by bob" in listing, listing
        board = retained(mosquitto.host, mosquitto.port, "gateway/hall/alerts")
        assert {a["acked_by"] for a in board} == {"ann", "bob"}

        publish(publisher, "tele/urn/SENSOR", {"ENERGY": {"Power": 2}})
        hook.wait("/ann", counted + 1, 10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            per_monitor = retained(mosquitto.host, mosquitto.port,
                                   "gateway/hall/alerts/urn-left-on")
            if per_monitor == []:
                break
        assert per_monitor == []
    finally:
        gw.stop()
        hook.stop()
    assert TOKEN not in gw.log_text()
