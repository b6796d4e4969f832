"""`gateway replay`: publish each configured device's documented example payloads.

Lets a user try a config end to end with no hardware: every device gets the
example messages its profile documents, with the example's parameters replaced
by the device's own (so `tele/defib_socket/SENSOR` becomes `tele/kitchen_urn/SENSOR`
for a device whose topic is kitchen_urn). Values vary a little each round so
graphs move. The device simulator (firmware-sim) is the full version of this.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt

from gateway.clock import SYSTEM
from gateway.config.schema import Config, DeviceConfig
from gateway.net.mqtt import configure
from gateway.profiles.examples import payload_bytes
from gateway.profiles.library import ProfileLibrary

log = logging.getLogger("gateway.replay")


def _jitter(data: Any, rng: random.Random) -> Any:
    if isinstance(data, bool) or not isinstance(data, (int, float, dict, list)):
        return data
    if isinstance(data, dict):
        return {k: _jitter(v, rng) for k, v in data.items()}
    if isinstance(data, list):
        return [_jitter(v, rng) for v in data]
    return round(data * rng.uniform(0.95, 1.05), 3) if data else data


def messages_for(device: DeviceConfig, library: ProfileLibrary,
                 rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """(topic, payload) for every example of the device's profile, adapted to the device."""
    profile = library.get(device.profile)
    if profile is None:
        return
    for ex in profile.spec.examples:
        if ex.ignored or not ex.readings:
            continue
        topic = ex.topic
        for key, value in ex.params.items():
            spec = profile.spec.params.get(key)
            mine = device.params.get(key, spec.default if spec else None)
            if isinstance(value, str) and isinstance(mine, str) and value:
                topic = re.sub(rf"(^|/){re.escape(value)}(/|$)", rf"\g<1>{mine}\g<2>", topic)
        if any(c in topic for c in "+#{}"):
            continue
        payload = ex.payload
        if isinstance(payload, str) and payload.lstrip().startswith("{"):
            try:
                payload = json.dumps(_jitter(json.loads(payload), rng))
            except ValueError:
                pass
        yield topic, payload_bytes(payload)


def replay(config: Config, library: ProfileLibrary, every: float, rounds: int) -> int:
    """Publish the examples `rounds` times (0 = until interrupted). Returns messages sent."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"gateway-replay-{config.gateway.name}")
    m = config.mqtt
    configure(client, m.username, m.password, m.tls)
    client.connect(m.host, m.port)
    client.loop_start()
    rng = random.Random(1)
    sent = n = 0
    try:
        while rounds == 0 or n < rounds:
            n += 1
            for device in config.devices:
                for topic, payload in messages_for(device, library, rng):
                    client.publish(topic, payload, qos=1).wait_for_publish(10)
                    sent += 1
            log.info("replay round %d: %d message(s) published so far", n, sent)
            if rounds == 0 or n < rounds:
                SYSTEM.sleep(every)
    finally:
        client.disconnect()
        client.loop_stop()
    return sent
