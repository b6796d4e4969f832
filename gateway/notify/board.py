"""The alerts on the local MQTT broker: a retained state a hall display or Home Assistant
shows even when no channel reaches anyone, and a command topic to acknowledge.

Topics, under `alerting.topic_prefix` (default `gateway/<name>`):
- `<prefix>/alerts` (retained): JSON list of the open alerts, replaced on each change;
- `<prefix>/alerts/<monitor>` (retained): that monitor's groups not OK, `[]` when calm;
- `<prefix>/alerts/ack` (the gateway subscribes): `{"id": 3, "by": "ann"}` or just `3`
  acknowledges alert #3, as `gateway alerts ack 3` does.

Its own connection to the broker (client id `<client_id>-alerts`): the MQTT source
is the data plane's and this never reaches into it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from gateway.config.schema import MqttSection
from gateway.net.mqtt import configure

log = logging.getLogger("gateway.notify")

#: acknowledges alert `id` for `by` (via "mqtt"); returns a line saying what happened
Ack = Callable[[int, str, str], str]


class AlertBoard:
    def __init__(self, mqtt_config: MqttSection, client_id: str, prefix: str, ack: Ack) -> None:
        self.prefix = prefix.rstrip("/")
        self.ack = ack
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._last: dict[str, str] = {}
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{client_id}-alerts",
                             protocol=mqtt.MQTTv5 if mqtt_config.protocol == "5"
                             else mqtt.MQTTv311)
        configure(client, mqtt_config.username, mqtt_config.password, mqtt_config.tls)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 30)
        self.client = client
        self.host, self.port, self.keepalive = (mqtt_config.host, mqtt_config.port,
                                                mqtt_config.keepalive)

    @property
    def ack_topic(self) -> str:
        return f"{self.prefix}/alerts/ack"

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            log.warning("alerts board: the broker %s:%s refused the connection: %s",
                        self.host, self.port, reason)
            return
        self.connected.set()
        client.subscribe(self.ack_topic, qos=1)
        with self._lock:
            for topic, payload in self._last.items():  # what changed while away
                client.publish(topic, payload, qos=1, retain=True)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.connected.clear()

    def show(self, open_alerts: list[dict[str, Any]], monitors: list[str]) -> None:
        """Publish the open alerts, retained: all of them, and each monitor's."""
        topics = {f"{self.prefix}/alerts": json.dumps(open_alerts)}
        for name in monitors:
            topics[f"{self.prefix}/alerts/{name}"] = json.dumps(
                [a for a in open_alerts if a["monitor"] == name])
        with self._lock:
            for topic, payload in topics.items():
                if self._last.get(topic) == payload:
                    continue
                self._last[topic] = payload
                self.client.publish(topic, payload, qos=1, retain=True)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            return  # an old command left retained on the broker is not a new one
        text = bytes(msg.payload).decode("utf-8", "replace").strip()
        try:
            data = json.loads(text)
            alert, by = (int(data["id"]), str(data.get("by") or "mqtt")) \
                if isinstance(data, dict) else (int(data), "mqtt")
        except (ValueError, KeyError, TypeError):
            log.warning("alerts board: %s: expected {\"id\": N, \"by\": NAME} or N, got %r",
                        msg.topic, text[:80])
            return
        log.info("alerts board: %s", self.ack(alert, by, "mqtt"))
