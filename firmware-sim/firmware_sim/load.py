"""Load mode: N simulated Tasmota energy plugs, each sending R SENSOR messages a second.

For benchmarks and soak tests. The payloads are the simulated firmware's own
(firmware_sim.devices.tasmota), so the gateway does its real work on them. The
devices share a few MQTT connections (`connections`), since what is measured is
the message rate, not the broker's connection handling. Pacing is by the wall
clock; every publish is QoS 1 and counted when the broker acknowledges it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from firmware_sim.devices.tasmota import TasmotaPlug
from firmware_sim.engine import Simulation


@dataclass
class LoadResult:
    devices: int
    sent: int
    acked: int
    lost: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def load_devices(count: int, seed: int = 0) -> list[TasmotaPlug]:
    sim = Simulation(time.time(), seed)
    return [TasmotaPlug(sim, {"id": f"load-plug-{i}", "topic": f"load_plug_{i}",
                              "channels": [{"load": {"watts": 40 + i % 200}, "on": True}]},
                        None)
            for i in range(count)]


def gateway_devices(count: int) -> list[dict[str, Any]]:
    return [{"id": f"load-plug-{i}", "profile": "tasmota", "topic": f"load_plug_{i}"}
            for i in range(count)]


class _Publisher(threading.Thread):
    def __init__(self, index: int, devices: list[TasmotaPlug], rate: float, until: float,
                 host: str, port: int, stop: threading.Event) -> None:
        super().__init__(name=f"load-{index}", daemon=True)
        self.devices = devices
        self.interval = 1.0 / (rate * len(devices))
        self.until = until
        self.stop = stop
        self.sent = self.acked = self.lost = 0
        self._lock = threading.Lock()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"gateway-sim-load-{index}",
                        protocol=mqtt.MQTTv311)
        c.max_inflight_messages_set(1000)
        c.on_publish = self._acked
        c.connect(host, port, keepalive=30)
        c.loop_start()
        self.client = c

    def _acked(self, *args: Any) -> None:
        with self._lock:
            self.acked += 1

    def run(self) -> None:
        due = time.monotonic()
        i = 0
        while not self.stop.is_set() and time.monotonic() < self.until:
            dev = self.devices[i % len(self.devices)]
            i += 1
            dev.sim.now = time.time()
            dev.sample()
            info = self.client.publish(f"tele/{dev.topic}/SENSOR",
                                       json.dumps(dev.sensor(), separators=(",", ":")), qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS or info.rc == mqtt.MQTT_ERR_NO_CONN:
                self.sent += 1  # NO_CONN: queued by paho, sent on reconnect
            else:
                self.lost += 1
            due += self.interval
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    def finish(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.acked >= self.sent:
                    break
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()


def run_load(host: str, port: int, devices: int, rate: float, duration: float,
             connections: int = 8, seed: int = 0, stop: threading.Event | None = None,
             progress: Any = None) -> LoadResult:
    """Publish for `duration` seconds; wait (up to 30 s) for the broker's acknowledgements."""
    stop = stop or threading.Event()
    plugs = load_devices(devices, seed)
    n = max(1, min(connections, devices))
    start = time.monotonic()
    until = start + duration
    pubs = [_Publisher(i, plugs[i::n], rate, until, host, port, stop) for i in range(n)]
    for p in pubs:
        p.start()
    while any(p.is_alive() for p in pubs):
        time.sleep(1.0)
        if progress is not None:
            progress(sum(p.sent for p in pubs), time.monotonic() - start)
    elapsed = time.monotonic() - start
    for p in pubs:
        p.finish(30.0)
    return LoadResult(devices, sum(p.sent for p in pubs), sum(p.acked for p in pubs),
                      sum(p.lost for p in pubs), elapsed)
