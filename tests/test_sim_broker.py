"""Through a real Mosquitto the simulated devices publish exactly what the recording says,
and a device that drops off Wi-Fi makes the broker itself publish its last will."""

from __future__ import annotations

import threading
import time
from collections import Counter

import paho.mqtt.client as mqtt
from programs.mosquitto import Mosquitto

from firmware_sim.network import BrokerNetwork
from firmware_sim.runner import ScenarioRun
from firmware_sim.scenario import load_scenario

START = "2026-03-02T06:00"


class Subscriber:
    """Subscribes to everything, like `mosquitto_sub -t '#'`, and keeps what arrives."""

    def __init__(self, broker: Mosquitto) -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watcher")
        c.on_message = self._message
        c.on_subscribe = lambda *a: self.ready.set()
        c.connect(broker.host, broker.port)
        c.subscribe("#", qos=1)
        c.loop_start()
        assert self.ready.wait(10)
        self.client = c

    def _message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def count(self) -> int:
        with self.lock:
            return len(self.got)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_broker_receives_what_the_recording_holds(mosquitto: Mosquitto) -> None:
    scenario = load_scenario("plug-offline")
    rec = ScenarioRun(scenario, None, seed=9, start=START).record()
    expected = Counter((m.topic, m.payload) for m in rec.messages)

    watcher = Subscriber(mosquitto)
    net = BrokerNetwork(mosquitto.host, mosquitto.port)
    live = ScenarioRun(scenario, net, seed=9, start=START, speed=3600)  # 6 h in 6 s
    try:
        live.run()
        assert net.wait_acked(20), f"broker acknowledged {net.acked} of {net.sent}"
        deadline = time.monotonic() + 20
        while watcher.count() < len(rec.messages) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        net.close()
        watcher.close()
    got = Counter((topic, payload) for topic, payload, _ in watcher.got)
    assert got == expected, (f"missing {list((expected - got).items())[:3]}, "
                             f"extra {list((got - expected).items())[:3]}")
    # The Offline came from the broker (the device had gone): it is the will.
    assert got[("tele/kitchen_urn/LWT", b"Offline")] == 2  # the Wi-Fi drop and the restart
