"""Older Tasmota builds print a failed sensor as a bare `nan` (or `inf`), which is not
JSON: the message's good readings are kept and the bad values counted as not_finite,
rather than the whole message lost as bad_json. Checked with `gateway decode`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def decode(payload: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "decode", "--profile", "tasmota",
                           "--param", "topic=th", "--topic", "tele/th/SENSOR",
                           "--payload", payload],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_bare_nan_and_inf_keep_the_good_readings():
    run = decode('{"DS18B20":{"Temperature":nan},"AM2301":{"Temperature":21.5,'
                 '"Humidity":-inf},"ENERGY":{"Power":5},"Note":"nan stays text"}')
    got = {r["metric"]: r["value"] for r in map(json.loads, run.stdout.splitlines())}
    assert got == {"plug.power": 5.0, "climate.temperature": 21.5}, run.stdout
    assert "not_finite: device 'decode' field 'DS18B20.Temperature': nan" in run.stderr
    assert "not_finite: device 'decode' field 'AM2301.Humidity': -inf" in run.stderr
    assert "bad_json" not in run.stderr


def test_text_that_is_not_json_is_still_bad_json():
    run = decode('{"ENERGY":{"Power":5},"Broken":nanx}')
    assert run.returncode == 1 and "bad_json" in run.stderr
