"""The simulated hall through a real broker and the gateway, with the broker restarted
mid-scenario: every reading the simulator's messages hold ends up in the gateway's file sink.

The expected readings come from decoding a recording of the same scenario (same seed
and start), so this holds the whole chain to account: simulator, Mosquitto (stopped
and started by the scenario's hooks), the gateway's persistent session, the store
and the file sink. Duplicates are allowed (at-least-once) but nothing may be missing.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import yaml

from firmware_sim.network import BrokerNetwork
from firmware_sim.runner import ScenarioRun
from firmware_sim.scenario import load_scenario
from gateway.config.load import parse_config
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary

START = "2026-01-06T08:00"
SEED = 4


def key(device: str, metric: str, tags: dict[str, Any], value: float) -> tuple[Any, ...]:
    extra = tuple(sorted((k, v) for k, v in tags.items() if k in ("channel", "climate")))
    return device, metric, extra, round(value, 6)


def expected_readings(devices: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    run = ScenarioRun(load_scenario("broker-restart"), None, seed=SEED, start=START)
    rec = run.record()
    config = parse_config(yaml.safe_dump({"gateway": {"name": "t"}, "devices": devices}))
    decoder = Decoder(config.devices, ProfileLibrary.builtin(), "t")
    out: Counter[tuple[Any, ...]] = Counter()
    for m in rec.messages:
        if decoder.subscribed(m.topic):
            for r in decoder.decode(m.topic, m.payload, m.ts).readings:
                out[key(r.tags["device"], r.metric, r.tags, r.value)] += 1
    return out


def test_scenario_with_broker_restart_arrives_whole(mosquitto, make_gateway) -> None:
    scenario = load_scenario("broker-restart")
    live = ScenarioRun(scenario, None, seed=SEED, start=START, speed=900,  # 2 h in 8 s
                       hooks={"broker-down": mosquitto.stop, "broker-up": mosquitto.start})
    devices = live.gateway_devices()
    gw = make_gateway({
        # The simulated January runs 900 times faster than the wall clock: the devices'
        # clocks are not the gateway's, so readings are stamped on receipt (as the demo's).
        "gateway": {"name": "hall", "device_time": {"enabled": False}},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "reconnect_min": 1,
                 "reconnect_max": 2},
        "devices": devices,
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    })
    gw.start()
    time.sleep(0.5)  # subscriptions in place before the devices' first, unretained messages
    net = BrokerNetwork(mosquitto.host, mosquitto.port)
    live.network = net
    try:
        live.run()
        assert net.wait_acked(30), f"broker acknowledged {net.acked} of {net.sent}"
    finally:
        net.close()
    expected = expected_readings(devices)
    file = gw.data_dir / "readings.jsonl"
    got: Counter[tuple[Any, ...]] = Counter()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if file.exists():
            got = Counter()
            for line in file.read_text().splitlines():
                r = json.loads(line)
                if not r["metric"].startswith("gateway."):
                    got[key(r["tags"]["device"], r["metric"], r["tags"], r["value"])] += 1
            if not expected - got:
                break
        time.sleep(1)
    missing = expected - got
    assert not missing, f"{sum(missing.values())} readings missing, e.g. {list(missing)[:5]}"
    assert set(got) == set(expected), f"unexpected: {list(set(got) - set(expected))[:5]}"
    assert gw.status()["ingest"]["undecodable"] == {}
    print(f"{sum(expected.values())} readings expected, {sum(got.values())} arrived "
          f"({sum((got - expected).values())} duplicates)")
