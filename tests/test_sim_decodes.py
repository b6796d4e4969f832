"""Every message the simulated hall publishes, in every scenario, decodes with the profiles.

The gateway config comes from the site itself (`gateway_devices()`), so this
also checks that simulator and profiles agree on topics. Messages on topics
the gateway does not subscribe to (Tasmota INFO1..3, Zigbee2MQTT bridge/...)
never reach it and are left out.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
import yaml

from firmware_sim.network import Recording
from firmware_sim.runner import ScenarioRun
from firmware_sim.scenario import load_scenario, scenario_names
from gateway.config.load import parse_config
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary

MQTT_SCENARIOS = [n for n in scenario_names() if load_scenario(n).site.name == "village-hall"]


def record(name: str) -> tuple[ScenarioRun, Recording]:
    run = ScenarioRun(load_scenario(name), None, seed=5, start="2026-01-05T07:00")
    return run, run.record()


@pytest.mark.parametrize("name", MQTT_SCENARIOS)
def test_every_message_decodes(name: str) -> None:
    run, rec = record(name)
    config = parse_config(yaml.safe_dump({"gateway": {"name": "sim"},
                                          "devices": run.gateway_devices()}))
    decoder = Decoder(config.devices, ProfileLibrary.builtin(), "sim")
    problems: Counter[str] = Counter()
    readings: dict[str, set[str]] = defaultdict(set)
    received = 0
    for msg in rec.messages:
        if not decoder.subscribed(msg.topic):
            continue
        received += 1
        decoded = decoder.decode(msg.topic, msg.payload, msg.ts)
        for reason, detail in decoded.problems:
            problems[f"{reason}: {detail}"[:200]] += 1
        for r in decoded.readings:
            readings[r.tags["device"]].add(r.metric)
    assert not problems, f"{sum(problems.values())} undecodable: {problems.most_common(5)}"
    assert received > 100
    # Every device the gateway is told about is heard, with its own kind of readings.
    assert set(readings) == {d["id"] for d in run.gateway_devices()}
    assert {"plug.power", "plug.energy_total", "plug.switch", "device.online"} <= readings[
        "defib-socket"]
    assert {"plug.power", "plug.energy_total", "plug.switch"} <= readings["stage-plug"]
    assert {"light.state", "light.brightness", "device.online"} <= readings["stage-bulb"]
    assert {"climate.temperature", "climate.setpoint", "switch.boiler_relay",
            "device.online"} <= readings["heating"]


def test_availability_both_ways_decodes_to_device_online() -> None:
    """A plug off Wi-Fi: the broker's will (Offline) and its return (Online) become 0 and 1."""
    run, rec = record("plug-offline")
    config = parse_config(yaml.safe_dump({"gateway": {"name": "sim"},
                                          "devices": run.gateway_devices()}))
    decoder = Decoder(config.devices, ProfileLibrary.builtin(), "sim")
    online = [r.value for m in rec.messages if m.topic == "tele/kitchen_urn/LWT"
              for r in decoder.decode(m.topic, m.payload, m.ts).readings]
    assert online[:3] == [1.0, 0.0, 1.0]
