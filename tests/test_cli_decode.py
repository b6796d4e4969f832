"""`gateway decode`: what the gateway would make of one message, without running anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
def sensor() -> str:
    """A Tasmota SENSOR from a plug set to UTC, as it sends it now: its Time is the reading's."""
    return ('{"Time":"' + time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + '","ENERGY":'
            '{"Total":512.417,"Yesterday":1.203,"Today":0.521,"Power":38,"Voltage":238,'
            '"Current":0.218}}')


def decode(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "decode", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_tasmota_sensor_message_prints_one_json_line_per_reading():
    done = decode("--profile", "tasmota", "--topic", "tele/defib_socket/SENSOR",
                  "--param", "topic=defib_socket", "--device", "defib-socket",
                  "--gateway", "hall", "--payload", sensor())
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    readings = [json.loads(line) for line in done.stdout.splitlines()]
    by_metric = {r["metric"]: r for r in readings}
    assert set(by_metric) == {"plug.power", "plug.voltage", "plug.current", "plug.energy_total",
                              "plug.energy_today", "plug.energy_yesterday"}
    power = by_metric["plug.power"]
    assert power["value"] == 38 and power["unit"] == "W" and power["type"] == "gauge"
    assert power["tags"] == {"device": "defib-socket", "gateway": "hall"}
    assert abs(power["ts"] - time.time()) < 60


def test_the_payload_can_come_on_stdin():
    done = decode("--profile", "tasmota", "--topic", "stat/defib_socket/POWER",
                  "--param", "topic=defib_socket", stdin="OFF")
    assert done.returncode == 0, done.stderr
    (reading,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert reading["metric"] == "plug.switch" and reading["value"] == 0


def test_malformed_json_exits_1_with_the_reason():
    done = decode("--profile", "tasmota", "--topic", "tele/defib_socket/SENSOR",
                  "--param", "topic=defib_socket", "--payload", '{"ENERGY":{"Power":38')
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("bad_json:")
    assert "tele/defib_socket/SENSOR" in done.stderr
    assert "Traceback" not in done.stderr


def test_other_problems_say_what_is_wrong():
    not_finite = decode("--profile", "tasmota", "--topic", "tele/p/SENSOR", "--param",
                        "topic=p", "--payload", '{"ENERGY":{"Power":NaN,"Voltage":230}}')
    assert not_finite.returncode == 1
    assert json.loads(not_finite.stdout)["metric"] == "plug.voltage"  # what could be read
    assert not_finite.stderr.startswith("not_finite:")
    assert "ENERGY.Power" in not_finite.stderr

    unknown_word = decode("--profile", "tasmota", "--topic", "stat/p/POWER", "--param",
                          "topic=p", "--payload", "MAYBE")
    assert unknown_word.returncode == 1
    assert unknown_word.stderr.startswith("unknown_value:") and "MAYBE" in unknown_word.stderr

    ignored = decode("--profile", "tasmota", "--topic", "stat/p/RESULT", "--param", "topic=p",
                     "--payload", '{"POWER":"ON"}')
    assert ignored.returncode == 0 and ignored.stdout == ""
    assert "ignored" in ignored.stderr

    missing_param = decode("--profile", "tasmota", "--topic", "tele/p/SENSOR",
                           "--payload", "{}")
    assert missing_param.returncode == 1
    assert "--param topic" in missing_param.stderr

    unknown_profile = decode("--profile", "sonoff", "--topic", "tele/p/SENSOR",
                             "--payload", "{}")
    assert unknown_profile.returncode == 1
    assert "unknown profile 'sonoff'" in unknown_profile.stderr and "tasmota" in \
        unknown_profile.stderr
