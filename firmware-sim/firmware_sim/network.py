"""Where simulated devices' MQTT traffic goes: a real broker, or a recording.

Each device has its own connection (`Link`) with its own last will, as real
firmware has, so a device that drops off Wi-Fi makes the broker publish its
will. A `Recording` keeps what a subscriber to '#' would have received, in
simulated time, without any broker: tests and `gateway-sim run --record` use it.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import paho.mqtt.client as mqtt

from firmware_sim.engine import Message, Simulation

log = logging.getLogger("firmware_sim.network")


class Link(Protocol):
    """One device's connection to the broker."""

    def publish(self, msg: Message) -> None: ...

    def drop(self) -> None:
        """The connection is lost without a DISCONNECT: the broker publishes the will."""

    def close(self) -> None:
        """A clean DISCONNECT: no will."""


class Network(Protocol):
    def connect(self, client_id: str, will: Message | None = None,
                on_reconnect: Callable[[], list[Message]] | None = None) -> Link: ...

    def close(self) -> None: ...


@dataclass
class Published:
    """One message as a subscriber sees it, stamped with the simulated time."""

    ts: float
    topic: str
    payload: bytes
    retain: bool
    client: str

    def to_json(self) -> str:
        try:
            text: Any = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            text = {"hex": self.payload.hex()}
        return json.dumps({"ts": round(self.ts, 3), "client": self.client, "topic": self.topic,
                           "retain": self.retain, "payload": text}, separators=(",", ":"))


@dataclass
class _RecordedLink:
    net: Recording
    client: str
    will: Message | None
    up: bool = True

    def publish(self, msg: Message) -> None:
        if self.up:
            self.net.add(self.client, msg)

    def drop(self) -> None:
        if self.up and self.will is not None:
            self.net.add(self.client, self.will)
        self.up = False

    def close(self) -> None:
        self.up = False


@dataclass
class Recording:
    """A network with no broker: keeps every publication (and will) in order."""

    sim: Simulation
    messages: list[Published] = field(default_factory=list)
    out: IO[str] | None = None  # also written here as JSON lines, if given

    def connect(self, client_id: str, will: Message | None = None,
                on_reconnect: Callable[[], list[Message]] | None = None) -> Link:
        return _RecordedLink(self, client_id, will)

    def add(self, client: str, msg: Message) -> None:
        rec = Published(self.sim.now, msg.topic, msg.payload, msg.retain, client)
        self.messages.append(rec)
        if self.out is not None:
            self.out.write(rec.to_json() + "\n")

    def close(self) -> None:
        if self.out is not None:
            self.out.flush()


class _BrokerLink:
    def __init__(self, net: BrokerNetwork, client_id: str, will: Message | None,
                 on_reconnect: Callable[[], list[Message]] | None) -> None:
        self.net = net
        self.client_id = client_id
        self.on_reconnect = on_reconnect
        self.connected = threading.Event()
        self._connects = 0
        self._pending = 0  # published, not yet acknowledged by the broker
        self._lock = threading.Lock()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=mqtt.MQTTv311, clean_session=True)
        if will is not None:
            c.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        if net.username:
            c.username_pw_set(net.username, net.password)
        c.max_queued_messages_set(net.max_queued)
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        self.client = c

    def start(self, timeout: float = 10.0) -> None:
        self.client.connect_async(self.net.host, self.net.port, keepalive=self.net.keepalive)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            log.warning("%s: no answer from the broker %s:%s yet; still trying", self.client_id,
                        self.net.host, self.net.port)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            log.error("%s: broker refused the connection: %s", self.client_id, reason)
            return
        self._connects += 1
        self.connected.set()
        if self._connects > 1 and self.on_reconnect is not None:
            # Firmware announces itself again after any reconnect (LWT Online, birth).
            for msg in self.on_reconnect():
                self.publish(msg)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.connected.clear()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        with self._lock:
            self._pending -= 1
        self.net.count_acked()

    def publish(self, msg: Message) -> None:
        info = self.client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.net.count_lost()
            log.warning("%s: publish queue full, message on %s lost", self.client_id, msg.topic)
        else:
            with self._lock:
                self._pending += 1
            self.net.count_sent()

    def _flush(self, timeout: float = 5.0) -> None:
        """Wait until the broker has what was published before this instant of simulated time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.connected.is_set():
            with self._lock:
                if self._pending <= 0:
                    return
            time.sleep(0.01)

    def drop(self) -> None:
        """Close the socket without DISCONNECT, as a device that loses Wi-Fi does.

        Messages the device published before the drop reach the broker first, as
        they would have on the air (the drop comes after them in simulated time).
        """
        self._flush()
        self.client.loop_stop()
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._flush()
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


class BrokerNetwork:
    """Real MQTT connections, one paho client (MQTT 3.1.1, as the firmware uses) per device."""

    def __init__(self, host: str, port: int, username: str | None = None,
                 password: str | None = None, keepalive: int = 30,
                 max_queued: int = 100000) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.keepalive = keepalive
        self.max_queued = max_queued
        self.links: list[_BrokerLink] = []
        self._lock = threading.Lock()
        self.sent = self.acked = self.lost = 0

    def connect(self, client_id: str, will: Message | None = None,
                on_reconnect: Callable[[], list[Message]] | None = None) -> Link:
        link = _BrokerLink(self, client_id, will, on_reconnect)
        link.start()
        self.links.append(link)
        return link

    def count_sent(self) -> None:
        with self._lock:
            self.sent += 1

    def count_acked(self) -> None:
        with self._lock:
            self.acked += 1

    def count_lost(self) -> None:
        with self._lock:
            self.lost += 1

    def wait_acked(self, timeout: float) -> bool:
        """Wait until the broker has acknowledged every QoS 1 message sent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.acked >= self.sent:
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        for link in self.links:
            link.close()
        self.links.clear()
