"""MQTT source: QoS 1 subscriptions in a persistent session, acknowledged after commit.

The broker keeps the session (fixed client id, clean_start off, session expiry
set) so messages published while the gateway is away wait for it. PUBACK is sent
only when the ingest stage has committed the message's readings (paho-mqtt
`manual_ack`); a crash before that makes the broker deliver the message again.

MQTT v5's Receive Maximum bounds how many unacknowledged messages the broker
sends at once, which bounds this process's memory (without it Mosquitto allows
only 20 in flight, far too few for group commit).

Each message is handed on as a RawMessage with its retain flag: the broker sets
it only on a retained message it delivers because the gateway subscribed
(MQTT 3.1.1 section 3.3.1.3; MQTT 5 too, as the gateway subscribes without
Retain As Published), so it marks the last known state, not a new reading.

A broker that answers "no session" when the gateway had one has forgotten it
(restarted without persistence, or expired it): whatever was published for the
gateway meanwhile is gone. That is logged as a WARNING saying what to check
and counted as `gateway.mqtt_session_lost`. A small record in the data folder
(SESSION_RECORD) says which broker and client id the gateway last used and when
it was last connected, so this is known on a start too, not only on a reconnect.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.clock import SYSTEM, Clock
from gateway.config.schema import MqttSection
from gateway.config.validate import duration_words
from gateway.health.stats import Stats
from gateway.model import RawMessage
from gateway.net.mqtt import configure, log_connect_failure
from gateway.sources.base import Source, Submit

log = logging.getLogger("gateway.mqtt")

#: file name, in the gateway's data folder, of the record of its broker session
SESSION_RECORD = "mqtt-session.json"
#: while connected, the record's "last connected" time is refreshed this often
#: (seconds), so a crash leaves it at most this stale
RECORD_EVERY = 600.0


class MqttSource(Source):
    """Subscribes to the devices' topics and hands every message to `submit`."""

    kind = "mqtt"

    def __init__(self, config: MqttSection, client_id: str, topics: Sequence[str],
                 submit: Submit, stats: Stats,
                 clock: Clock = SYSTEM,
                 session_record: Path | None = None) -> None:
        super().__init__("mqtt")
        self.config = config
        self.client_id = client_id
        self.topics = list(topics)
        self.submit = submit
        self.stats = stats
        self.clock = clock
        self.session = _SessionRecord(session_record, f"{config.host}:{config.port}",
                                      client_id)
        self._lock = threading.Lock()
        self._generation = 0
        self.connected = threading.Event()
        #: every subscription acknowledged by the broker on this connection: until then a
        #: message published for a device may not reach the gateway (on a new session)
        self.subscribed = threading.Event()
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

    def ready(self) -> bool:
        return self.subscribed.is_set()

    def problem(self) -> str:
        where = f"{self.config.host}:{self.config.port}"
        if not self.connected.is_set():
            return f"not connected to the MQTT broker {where}"
        if not self.subscribed.is_set():
            return f"connected to the MQTT broker {where}, subscribing to the devices' topics"
        return ""

    def stop(self) -> None:
        try:
            if self.connected.is_set():
                self.session.save(self.clock.now())
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    # -- paho callbacks (network thread) ----------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.stats.set("gateway.mqtt_connected", 0)
            hint = (" (check mqtt.username and mqtt.password)"
                    if "authori" in str(reason).lower() or "password" in str(reason).lower()
                    else "")
            log.error("MQTT broker %s:%s refused the connection: %s%s", self.config.host,
                      self.config.port, reason, hint)
            return
        present = bool(getattr(flags, "session_present", False))
        now = self.clock.now()
        if present:
            log.info("connected to MQTT broker %s:%s (session resumed); subscribing to %d "
                     "topic(s)", self.config.host, self.config.port, len(self.topics))
        else:
            self._new_session(self.session.last_connected(), now)
        self.session.save(now)
        self.stats.set("gateway.mqtt_connected", 1)
        self.stats.inc("gateway.mqtt_connects")
        self.subscribed.clear()
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
        if not self._subscribe_topics:
            self.subscribed.set()

    def _new_session(self, last: float | None, now: float) -> None:
        """The broker holds no session for the gateway: expected, expired, or forgotten."""
        where = f"{self.config.host}:{self.config.port}"
        if last is None:
            log.info("connected to MQTT broker %s (new session: the first with this broker "
                     "and client id %s); subscribing to %d topic(s)", where, self.client_id,
                     len(self.topics))
            return
        away = max(0.0, now - last)
        expiry = self.config.session_expiry
        if self.v5 and away > expiry:
            self.stats.inc("gateway.mqtt_session_lost", reason="expired")
            log.warning(
                "MQTT broker %s had no session for %s: the gateway was away %s, longer than "
                "mqtt.session_expiry (%s), so the broker dropped the session and what was "
                "published for the gateway in that time is lost. Raise mqtt.session_expiry "
                "(and the broker's max_session_expiry_interval / persistent_client_expiration) "
                "if it may be away that long", where, self.client_id, duration_words(away),
                duration_words(expiry))
            return
        self.stats.inc("gateway.mqtt_session_lost", reason="forgotten")
        log.warning(
            "MQTT broker %s had no session for %s although the gateway was connected %s ago: "
            "the broker forgot it, so messages published for the gateway since then are lost "
            "(the broker did not queue them). Check the broker keeps sessions: Mosquitto needs "
            "`persistence true` and a persistence_location that survives restarts, and its "
            "`persistent_client_expiration` must be longer than the gateway may be away%s",
            where, self.client_id, duration_words(away),
            "" if self.v5 else " (with MQTT 3.1.1 the broker alone decides how long)")

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log_connect_failure(log, f"MQTT broker {self.config.host}:{self.config.port}",
                            "mqtt.tls")

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: list[Any], properties: Any) -> None:
        topics = self._subscribe_topics.pop(mid, [])
        for topic, code in zip(topics, reason_codes, strict=False):
            if code.is_failure:
                self.stats.inc("gateway.mqtt_subscribe_failures")
                log.error("broker refused subscription to %r: %s", topic, code)
        if not self._subscribe_topics:
            self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        with self._lock:
            # Message ids restart on a new connection: acks for messages of the old
            # one must not be sent, or they could acknowledge a different message.
            self._generation += 1
        if self.connected.is_set():
            self.session.save(self.clock.now())
        self.connected.clear()
        self.subscribed.clear()
        self._subscribe_topics.clear()
        self.stats.set("gateway.mqtt_connected", 0)
        if reason.is_failure:
            self.stats.inc("gateway.mqtt_disconnects")
            log.warning("lost MQTT broker %s:%s (%s); reconnecting", self.config.host,
                        self.config.port, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.dup:
                self.stats.inc("gateway.mqtt_redelivered")
            ack = None
            if msg.qos > 0:
                ack = _Acker(self, msg.mid, msg.qos, self._generation)
            now = self.clock.now()
            self.session.refresh(now)
            self.submit(RawMessage(msg.topic, bytes(msg.payload), now, bool(msg.retain)), ack)
        except Exception as exc:  # noqa: BLE001 - a bug: unacknowledged, and told
            # Raised out of here it would end paho's network thread unseen (the
            # gateway would look connected and read nothing). The message is not
            # acknowledged; the supervisor stops the gateway for a fresh start.
            if self.failure is None:
                self.failure = exc

    def tick(self) -> None:
        """Called now and then (by the service): keeps the session record's time fresh
        while connected, even when no message arrives."""
        if self.connected.is_set():
            self.session.refresh(self.clock.now())

    def _ack(self, mid: int, qos: int, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                self.stats.inc("gateway.mqtt_stale_acks")
                return
            self.client.ack(mid, qos)


class _SessionRecord:
    """Which broker and client id the gateway last had a session with, and when it was there.

    Kept as a small JSON file beside the store; a missing or unreadable file
    (a first start, or a new data folder) means no session is expected.
    """

    def __init__(self, path: Path | None, broker: str, client_id: str) -> None:
        self.path = path
        self.broker = broker
        self.client_id = client_id
        self._saved = 0.0
        self._known: float | None = None  # this process's own knowledge, if any

    def last_connected(self) -> float | None:
        """When the gateway was last known connected to this broker as this client."""
        if self._known is not None:
            return self._known  # even if the file could not be written (a full disk)
        if self.path is None:
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("broker") != self.broker or data.get("client_id") != self.client_id:
                return None
            return float(data["last_connected"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def save(self, now: float) -> None:
        self._known = now
        if self.path is None:
            return
        self._saved = now
        text = json.dumps({"broker": self.broker, "client_id": self.client_id,
                           "last_connected": now})
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:  # a full disk must not stop the source; the store says so
            log.debug("cannot write %s: %s", self.path, exc)

    def refresh(self, now: float) -> None:
        """Save now and then while messages flow, so a crash leaves a recent time."""
        if now - self._saved >= RECORD_EVERY or now < self._saved:
            self.save(now)



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
