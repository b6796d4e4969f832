"""The upstream MQTT sink's settings (`type: mqtt`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.schema import SinkCommon, TlsConfig, port_problems
from gateway.config.validate import Secret, doc


@dataclass(frozen=True)
class MqttSinkConfig(SinkCommon):
    type: Literal["mqtt"] = "mqtt"
    host: str = field(default="127.0.0.1", metadata=doc("upstream broker host"))
    port: int = field(default=1883, metadata=doc("upstream broker port"))
    client_id: str = field(default="", metadata=doc("client id; gateway-<name>-<sink> if unset"))
    username: str | None = field(default=None, metadata=doc("user name"))
    password: Secret | None = field(default=None, metadata=doc("password", secret=True))
    tls: TlsConfig | None = field(default=None, metadata=doc("TLS settings"))
    topic: str = field(
        default="gateway/{gateway}/{device}",
        metadata=doc("topic template: {gateway}, {device}, {metric} or any tag"),
    )
    retain: bool = field(default=False, metadata=doc("publish with the retain flag"))
    batch_size: int = field(default=1000, metadata=doc("readings in flight at once"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from SinkCommon.check(self)
        yield from port_problems("port", self.port)
        if not self.host.strip():
            yield "host", "must name the upstream broker"
        if "#" in self.topic or "+" in self.topic:
            yield "topic", "a publish topic may not hold the wildcards + or #"
