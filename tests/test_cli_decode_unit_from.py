"""`gateway decode` says where each reading's unit came from: the profile, a message in
which the device described itself (`--describe`, as the gateway has it retained), or
the payload's own unit key; a describe topic the profile learns nothing from is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# ESPHome's discovery config as it sends it by default (use_abbreviations: true).
DISCOVERY = {"dev_cla": "temperature", "unit_of_meas": "°C", "stat_cla": "measurement",
             "name": "Flow temperature", "stat_t": "hall-heating/sensor/flow_temperature/state",
             "avty_t": "hall-heating/status", "uniq_id": "ESPsensorflow_temperature",
             "dev": {"ids": "a4cf12b3c4d5", "name": "hall-heating",
                     "sw": "2024.6.1 (ESPHome 2024.6.1)", "mdl": "esp32dev"}}
CONFIG_TOPIC = "homeassistant/sensor/hall-heating/flow_temperature/config"


def decode(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "decode", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def lines(done: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    return {r["metric"]: r for r in map(json.loads, done.stdout.splitlines())}


def test_a_unit_learned_from_a_discovery_config_names_its_topic(tmp_path):
    config = tmp_path / "flow.json"
    config.write_text(json.dumps(DISCOVERY))
    args = ("--profile", "esphome", "--param", "node=hall-heating",
            "--topic", "hall-heating/sensor/flow_temperature/state", "--payload", "48.6")
    before = lines(decode(*args))["sensor.flow_temperature"]
    assert before["unit"] == "" and "unit_from" not in before
    done = decode(*args, "--describe", CONFIG_TOPIC, str(config))
    assert done.returncode == 0, done.stderr
    after = lines(done)["sensor.flow_temperature"]
    assert (after["value"], after["unit"], after["unit_from"]) == (48.6, "°C", CONFIG_TOPIC)


def test_a_converted_unit_names_the_payload_key_and_a_plain_one_the_profile():
    done = decode("--profile", "tasmota", "--param", "topic=hall_temp",
                  "--topic", "tele/hall_temp/SENSOR", "--payload",
                  '{"DS18B20":{"Id":"01144A0CB2AA","Temperature":68.0},"TempUnit":"F",'
                  '"ENERGY":{"Power":12}}')
    assert done.returncode == 0, done.stderr
    got = lines(done)
    temp = next(r for m, r in got.items() if m.endswith("temperature"))
    assert temp["unit"] == "°C" and temp["value"] == 20.0
    assert temp["unit_from"] == "the payload's TempUnit F, converted"
    assert got["plug.power"]["unit_from"] == "profile"


def test_a_describe_topic_the_profile_does_not_learn_from_is_refused(tmp_path):
    config = tmp_path / "flow.json"
    config.write_text(json.dumps(DISCOVERY))
    done = decode("--profile", "esphome", "--param", "node=hall-heating",
                  "--topic", "hall-heating/sensor/flow_temperature/state", "--payload", "48.6",
                  "--describe", "hall-heating/status", str(config))
    assert done.returncode == 1 and done.stdout == ""
    assert "--describe hall-heating/status" in done.stderr
    assert "learns nothing from that topic" in done.stderr


def test_a_missing_describe_file_is_named(tmp_path):
    done = decode("--profile", "esphome", "--param", "node=hall-heating",
                  "--topic", "hall-heating/sensor/flow_temperature/state", "--payload", "48.6",
                  "--describe", CONFIG_TOPIC, str(tmp_path / "nope.json"))
    assert done.returncode == 1
    assert "nope.json" in done.stderr and "Traceback" not in done.stderr
