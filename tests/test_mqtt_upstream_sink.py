"""The upstream MQTT sink: each reading is published as JSON (QoS 1) on a templated topic.

A second Mosquitto plays the upstream (cluster or cloud) broker. While it is
down, readings wait in the store (the sink's backlog) and arrive once it is
back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import publish
from programs.mosquitto import Mosquitto


@pytest.fixture
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("upstream"))
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


class Watcher:
    """A persistent-session QoS 1 subscriber on the upstream broker, as a cloud consumer."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.messages: list[tuple[str, dict, int]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cloud-consumer",
                                  clean_session=False)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, json.loads(msg.payload), msg.qos))

    def values(self, metric: str, device: str) -> list[float]:
        with self._lock:
            return [m["value"] for _, m, _ in self.messages
                    if m["metric"] == metric and m["tags"].get("device") == device]

    def wait(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.1)
        return predicate()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _sensor(mosquitto: Mosquitto, power: float) -> None:
    publish.single("tele/defib_socket/SENSOR", json.dumps({"ENERGY": {"Power": power}}), qos=1,
                   hostname=mosquitto.host, port=mosquitto.port)


def test_readings_are_published_upstream_and_wait_while_it_is_down(mosquitto, upstream,
                                                                   make_gateway):
    watcher = Watcher(upstream, "halls/#")
    try:
        gw = make_gateway({
            "gateway": {"name": "hall", "tags": {"site": "kilnwick"},
                        "self_metrics_interval": 1},
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            "devices": [{"id": "defib-socket", "profile": "tasmota", "topic": "defib_socket",
                         "priority": "critical", "tags": {"room": "entrance"}}],
            "sinks": [{"name": "cloud", "type": "mqtt", "host": upstream.host,
                       "port": upstream.port, "topic": "halls/{gateway}/{device}",
                       "backoff_min": 0.2, "backoff_max": 1}],
        })
        gw.start()
        _sensor(mosquitto, 38)
        assert watcher.wait(lambda: watcher.values("plug.power", "defib-socket") == [38], 20)
        topic, message, qos = next(m for m in watcher.messages
                                   if m[1]["metric"] == "plug.power")
        assert topic == "halls/hall/defib-socket"
        assert qos == 1
        assert message["unit"] == "W" and message["type"] == "gauge"
        assert message["priority"] == "critical"
        assert message["tags"] == {"device": "defib-socket", "gateway": "hall",
                                   "site": "kilnwick", "room": "entrance"}
        assert abs(message["ts"] - time.time()) < 60
        # The one JSON form of a reading, as the file sink writes it too.
        assert list(message) == ["metric", "value", "ts", "type", "unit", "tags", "priority"]
        # The gateway's own health goes the same way, under its own name.
        assert watcher.wait(lambda: any(t == "halls/hall/hall" for t, _, _ in watcher.messages),
                            10)

        # The upstream broker goes away: readings wait in the store.
        upstream.stop()
        for power in (39, 40, 41):
            _sensor(mosquitto, power)
        assert gw.wait_for(lambda s: s["sinks"][0]["state"] == "retrying"
                           and s["sinks"][0]["backlog_rows"] >= 3, 20), gw.status()
        sink = gw.sink("cloud")
        assert upstream.host in sink["last_error"] or str(upstream.port) in sink["last_error"]
        assert watcher.values("plug.power", "defib-socket") == [38]

        # Back again: the backlog drains and every reading arrives (at least once).
        upstream.start()
        assert watcher.wait(lambda: {39, 40, 41} <= set(
            watcher.values("plug.power", "defib-socket")), 30), watcher.values(
            "plug.power", "defib-socket")
        assert gw.wait_for(lambda s: s["sinks"][0]["state"] in ("ok", "idle")
                           and s["sinks"][0]["backlog_rows"] < 3, 20), gw.status()
        assert set(watcher.values("plug.power", "defib-socket")) == {38, 39, 40, 41}
        assert gw.stop() == 0
    finally:
        watcher.close()
