"""MQTT source: QoS 1 subscriptions in a persistent session, acknowledged after commit.

The broker keeps the session (fixed client id, clean_start off, session expiry
set) so messages published while the gateway is away wait for it. PUBACK is sent
only when the ingest stage has committed the message's readings (paho-mqtt
`manual_ack`); a crash before that makes the broker deliver the message again.

MQTT v5's Receive Maximum bounds how many unacknowledged messages the broker
sends at once, which bounds this process's memory (without it Mosquitto allows
only 20 in flight, far too few for group commit).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.config.schema import MqttSection
from gateway.mqttclient import configure, log_connect_failure
from gateway.stats import Stats

log = logging.getLogger("gateway.mqtt")

Submit = Callable[[str, bytes, float, Callable[[], None] | None], None]


class MqttSource:
    """Subscribes to the devices' topics and hands every message to `submit`."""

    def __init__(self, config: MqttSection, client_id: str, topics: Sequence[str],
                 submit: Submit, stats: Stats,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.topics = list(topics)
        self.submit = submit
        self.stats = stats
        self.clock = clock
        self._lock = threading.Lock()
        self._generation = 0
        self.connected = threading.Event()
        self.v5 = config.protocol == "5"
        # MQTT 3.1.1 keeps the session through clean_session=False instead of clean_start.
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
                             clean_session=None if self.v5 else False, manual_ack=True)
        configure(client, config.username, config.password, config.tls)
        client.reconnect_delay_set(min_delay=max(1, int(config.reconnect_min)),
                                   max_delay=max(1, int(config.reconnect_max)))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.client = client
        self._subscribe_topics: dict[int, list[str]] = {}

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.session_expiry
        props.ReceiveMaximum = self.config.receive_maximum
        return props

    def start(self) -> None:
        where = f"{self.config.host}:{self.config.port}"
        log.info("connecting to MQTT broker %s as %s", where, self.client._client_id.decode())
        if self.v5:
            self.client.connect_async(self.config.host, self.config.port,
                                      keepalive=self.config.keepalive, clean_start=False,
                                      properties=self._connect_properties())
        else:
            self.client.connect_async(self.config.host, self.config.port,
                                      keepalive=self.config.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.stats.set("gateway.mqtt.connected", 0)
            hint = (" (check mqtt.username and mqtt.password)"
                    if "authori" in str(reason).lower() or "password" in str(reason).lower()
                    else "")
            log.error("MQTT broker %s:%s refused the connection: %s%s", self.config.host,
                      self.config.port, reason, hint)
            return
        present = bool(getattr(flags, "session_present", False))
        log.info("connected to MQTT broker %s:%s (session %s); subscribing to %d topic(s)",
                 self.config.host, self.config.port,
                 "resumed" if present else "new", len(self.topics))
        self.stats.set("gateway.mqtt.connected", 1)
        self.stats.inc("gateway.mqtt.connects")
        self.connected.set()
        # Subscribe every time: cheap, and a broker that lost its session (no persistence)
        # would otherwise leave us subscribed to nothing.
        for i in range(0, len(self.topics), 100):
            chunk = self.topics[i:i + 100]
            if self.v5:
                _, mid = client.subscribe([(t, SubscribeOptions(qos=1)) for t in chunk])
            else:
                _, mid = client.subscribe([(t, 1) for t in chunk])
            if mid is not None:
                self._subscribe_topics[mid] = chunk

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log_connect_failure(log, f"MQTT broker {self.config.host}:{self.config.port}",
                            "mqtt.tls")

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: list[Any], properties: Any) -> None:
        topics = self._subscribe_topics.pop(mid, [])
        for topic, code in zip(topics, reason_codes, strict=False):
            if code.is_failure:
                self.stats.inc("gateway.mqtt.subscribe_failures")
                log.error("broker refused subscription to %r: %s", topic, code)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        with self._lock:
            # Message ids restart on a new connection: acks for messages of the old
            # one must not be sent, or they could acknowledge a different message.
            self._generation += 1
        self.connected.clear()
        self.stats.set("gateway.mqtt.connected", 0)
        if reason.is_failure:
            self.stats.inc("gateway.mqtt.disconnects")
            log.warning("lost MQTT broker %s:%s (%s); reconnecting", self.config.host,
                        self.config.port, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.dup:
            self.stats.inc("gateway.mqtt.redelivered")
        ack = None
        if msg.qos > 0:
            ack = _Acker(self, msg.mid, msg.qos, self._generation)
        self.submit(msg.topic, bytes(msg.payload), self.clock(), ack)

    def _ack(self, mid: int, qos: int, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                self.stats.inc("gateway.mqtt.stale_acks")
                return
            self.client.ack(mid, qos)


class _Acker:
    """Callable that acknowledges one message, if its connection is still the current one."""

    __slots__ = ("generation", "mid", "qos", "source")

    def __init__(self, source: MqttSource, mid: int, qos: int, generation: int) -> None:
        self.source = source
        self.mid = mid
        self.qos = qos
        self.generation = generation

    def __call__(self) -> None:
        self.source._ack(self.mid, self.qos, self.generation)
