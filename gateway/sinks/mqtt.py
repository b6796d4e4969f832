"""Upstream MQTT sink: each reading is published as JSON with QoS 1
(gateway.sinks.jsonform: the same JSON as the file sink writes).

A reading counts as delivered only when the upstream broker has answered its
PUBLISH with PUBACK. The topic comes from a template such as
`halls/{gateway}/{device}`; placeholders are `metric` and any tag.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt

from gateway.clock import SYSTEM, Clock
from gateway.model import Row
from gateway.net.mqtt import configure, log_connect_failure
from gateway.sinks.base import Outcome, Sink, SinkContext
from gateway.sinks.jsonform import JsonForm
from gateway.sinks.mqtt_config import MqttSinkConfig

log = logging.getLogger("gateway.sink.mqtt")


class _Fields(dict):
    def __missing__(self, key: str) -> str:
        return "_"


def topic_for(template: str, row: Row) -> str:
    values = _Fields(row.info.tags)
    values["metric"] = row.info.metric
    topic = string.Formatter().vformat(template, (), values)
    return topic.replace("+", "_").replace("#", "_")


#: CONNACK reasons (MQTT 5 and 3.1.1, as paho names them) that refuse our credentials
REFUSED_CREDENTIALS = frozenset({"Not authorized", "Bad user name or password"})


class MqttSink(Sink):
    confirms = "PUBACK (QoS 1) from the upstream broker"

    def __init__(self, config: MqttSinkConfig, gateway_name: str,
                 clock: Clock = SYSTEM) -> None:
        super().__init__(config.name, clock)
        self.config = config
        client_id = config.client_id or f"gateway-{gateway_name}-{config.name}"
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv311, clean_session=False)
        configure(client, config.username, config.password, config.tls)
        client.max_inflight_messages_set(max(20, config.batch_size))
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=int(max(1, config.backoff_max)))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        self.client = client
        self.connected = False
        self.refused = False
        self.why_not_connected = "not connected yet"
        self.where = f"{config.host}:{config.port}"
        self._json = JsonForm()
        self._topics: dict[int, str] = {}

    @classmethod
    def build(cls, config: MqttSinkConfig, context: SinkContext) -> MqttSink:
        return cls(config, context.gateway_name, context.clock)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        self.connected = not reason.is_failure
        # Refused credentials are a configuration problem no retry fixes: held.
        self.refused = reason.is_failure and str(reason) in REFUSED_CREDENTIALS
        if reason.is_failure:
            self.why_not_connected = f"it refused the connection: {reason}" + (
                " (check the sink's username and password)" if self.refused else "")
            log.error("sink %s: upstream broker %s refused the connection: %s", self.name,
                      self.where, reason)
        else:
            log.info("sink %s: connected to upstream broker %s", self.name, self.where)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self.why_not_connected = log_connect_failure(
            log, f"upstream broker {self.where} (sink {self.name})", f"sink {self.name}'s tls")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        if self.connected:
            self.why_not_connected = f"connection lost ({reason})"
            log.warning("sink %s: lost upstream broker %s (%s); readings wait in the store",
                        self.name, self.where, reason)
        self.connected = False

    async def open(self) -> None:
        self.client.connect_async(self.config.host, self.config.port, keepalive=60)
        self.client.loop_start()

    async def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    async def send(self, rows: Sequence[Row]) -> Outcome:
        if not self.connected:
            why = f"not connected to upstream broker {self.where}: {self.why_not_connected}"
            return Outcome.held(why) if self.refused else Outcome.failed(why)
        infos = []
        topics, encode = self._topics, self._json.encode
        for row in rows:
            topic = topics.get(row.series)
            if topic is None:
                if len(topics) >= 100000:
                    topics.clear()
                topic = topics[row.series] = topic_for(self.config.topic, row)
            info = self.client.publish(topic, encode(row), qos=1, retain=self.config.retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            infos.append(info)
        deadline = self.clock.monotonic() + self.config.timeout
        while True:
            done = 0
            for info in infos:
                if not info.is_published():
                    break
                done += 1
            if done == len(rows):
                return Outcome(done=done, delivered=done)
            if not self.connected or self.clock.monotonic() > deadline:
                # Unconfirmed ones are sent again later: at-least-once.
                why = "connection lost" if not self.connected else "no PUBACK in time"
                return Outcome(done=done, delivered=done,
                               error=f"{why} from upstream broker {self.where} "
                                     f"({len(rows) - done} unconfirmed)")
            await self.clock.asleep(0.01)
