"""true/false in a payload: a state where the field is a state, a wrong type where it is a
measurement with a unit.

The profile schema says which: a field is a state when it maps values (ON/OFF),
when its rollup is `changes` (switch, occupancy, contact...), or when it has no
unit and names no rollup (an unknown Zigbee key, a generic-json field). Power in
W, a battery in %, an uptime in s are measurements: true there is `wrong_type`,
not 1.0 W. Checked with `gateway decode`, as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def decode(profile: str, topic: str, payload: str,
           *params: str) -> subprocess.CompletedProcess[str]:
    args = [a for p in params for a in ("--param", p)]
    return subprocess.run([sys.executable, "-m", "gateway", "decode", "--profile", profile,
                           "--topic", topic, "--payload", payload, *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def readings(done: subprocess.CompletedProcess[str]) -> dict[str, float]:
    return {r["metric"]: r["value"] for r in map(json.loads, done.stdout.splitlines())}


def test_true_as_a_tasmota_power_in_watts_is_a_wrong_type_not_one_watt():
    done = decode("tasmota", "tele/plug/SENSOR", '{"ENERGY":{"Power":true,"Voltage":230}}',
                  "topic=plug")
    assert done.returncode == 1
    assert readings(done) == {"plug.voltage": 230}
    assert done.stderr.startswith("wrong_type:"), done.stderr
    assert "ENERGY.Power" in done.stderr and "expected a number in W, got true" in done.stderr


def test_true_as_a_zigbee_battery_percentage_is_a_wrong_type():
    done = decode("zigbee2mqtt", "zigbee2mqtt/sensor", '{"battery":false,"linkquality":80}',
                  "friendly_name=sensor")
    assert done.returncode == 1
    assert readings(done) == {"device.linkquality": 80}
    assert "wrong_type" in done.stderr and "'battery'" in done.stderr


def test_true_and_false_stay_states_where_the_field_is_one():
    shelly = decode("shelly", "sh/status/switch:0", '{"id":0,"output":true}', "prefix=sh")
    assert shelly.returncode == 0, shelly.stderr
    assert readings(shelly) == {"plug.switch": 1}  # rollup: changes

    zigbee = decode("zigbee2mqtt", "zigbee2mqtt/hall/pir",
                    '{"occupancy":true,"battery_low":false,"led_indication":true}',
                    "friendly_name=hall/pir")
    assert zigbee.returncode == 0, zigbee.stderr
    # occupancy and battery_low are states; led_indication is an unknown unit-less key.
    assert readings(zigbee) == {"sensor.occupancy": 1, "device.battery_low": 0,
                                "zigbee.led_indication": 1}

    generic = decode("generic-json", "hall/boiler", '{"flame":true}', "topic=hall/boiler",
                     'fields={"flame": "boiler.flame"}')
    assert generic.returncode == 0, generic.stderr
    assert readings(generic) == {"boiler.flame": 1}  # no unit, no rollup named

    mapped = decode("generic-json", "hall/boiler", '{"pump":true}', "topic=hall/boiler",
                    'fields={"pump": {"metric": "boiler.pump", "map": "on_off", "unit": "x"}}')
    assert mapped.returncode == 0, mapped.stderr
    assert readings(mapped) == {"boiler.pump": 1}  # a value map makes it a state
