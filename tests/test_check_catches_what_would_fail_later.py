"""`gateway check` refuses what would make `run` fail or lose data later, naming the key.

Each of these passed `check` once and then failed at run time (a port out of range
died with a traceback, so systemd restarted it forever) or lost data quietly (a
second `sinks:` replaced the first; two devices read one topic; an influx sink
without a url wrote to a default :8086 nobody runs).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config.load import parse_config
from gateway.config.validate import ConfigError

ROOT = Path(__file__).resolve().parents[1]
GOOD = """\
gateway: {name: hall}
devices:
  - {id: plug1, profile: tasmota, topic: plug_1}
sinks:
  - {name: vm, type: influx, url: "http://127.0.0.1:8428"}
"""


def check(tmp_path: Path, text: str, **env: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "hall.yaml"
    config.write_text(text)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHECK_TEST_")}
    return subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**environ, "PYTHONPATH": str(ROOT), **env})


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "hall.yaml", env or {})
    return [str(p) for p in info.value.problems]


def test_a_port_out_of_range_is_an_error_not_a_traceback_at_run(tmp_path):
    text = GOOD.replace("{name: hall}", "{name: hall, http: {port: 99999}}")
    done = check(tmp_path, text)
    assert done.returncode == 1
    assert "gateway.http.port: must be a TCP port between 1 and 65535, got 99999" in done.stderr
    run = subprocess.run([sys.executable, "-m", "gateway", "run", "--config",
                          str(tmp_path / "hall.yaml")], capture_output=True, text=True,
                         timeout=60, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "gateway.http.port" in run.stderr
    assert "sinks[0].url: has a port out of range" in "\n".join(
        problems(GOOD.replace("127.0.0.1:8428", "127.0.0.1:84280")))
    assert "sinks[0].port: must be a TCP port" in "\n".join(problems(
        GOOD.replace('type: influx, url: "http://127.0.0.1:8428"', "type: mqtt, port: 0")))


def test_a_key_given_twice_is_an_error_with_both_lines(tmp_path):
    text = GOOD + "sinks:\n  - {name: file, type: file}\n"
    done = check(tmp_path, text)
    assert done.returncode == 1
    assert ("sinks: given twice (lines 4 and 6): YAML would keep only the second; merge them "
            "into one") in done.stderr
    nested = problems(GOOD.replace("{name: hall}", "{name: hall, name: other}"))
    assert nested == ["gateway.name: given twice (lines 1 and 1): YAML would keep only the "
                      "second; merge them into one"]


def test_two_devices_reading_one_topic(tmp_path):
    twice = GOOD.replace("  - {id: plug1, profile: tasmota, topic: plug_1}\n",
                         "  - {id: plug1, profile: tasmota, topic: plug_1}\n"
                         "  - {id: plug2, profile: tasmota, topic: plug_1}\n")
    done = check(tmp_path, twice)
    assert done.returncode == 1
    assert ("devices[1]: device 'plug2' reads topic 'tele/plug_1/SENSOR', as devices[0] "
            "('plug1') does with the same profile and parameters") in done.stderr
    # Reading different fields of one hub's payload is legitimate: a warning, exit 0.
    hub = GOOD.replace(
        "  - {id: plug1, profile: tasmota, topic: plug_1}\n",
        "  - {id: hall-temp, profile: generic-json, topic: hall/hub, fields: {t: hall.temp}}\n"
        "  - {id: hall-hum, profile: generic-json, topic: hall/hub, fields: {h: hall.hum}}\n"
        "  - {id: any, profile: generic-json, topic: 'hall/#', fields: {x: hall.x}}\n")
    done = check(tmp_path, hub)
    assert done.returncode == 0, done.stderr
    assert ("warning: devices[1]: device 'hall-hum' reads topic 'hall/hub', as devices[0] "
            "('hall-temp') does: messages there give readings for both devices") in done.stderr
    assert ("warning: devices[2]: device 'any' reads 'hall/#', which also takes 'hall/hub' of "
            "devices[0] ('hall-temp')") in done.stderr
    assert "3 warning(s)" in done.stdout


def test_no_sinks_or_no_devices_are_warnings(tmp_path):
    done = check(tmp_path, "gateway: {name: hall}\n")
    assert done.returncode == 0, done.stderr
    assert "warning: devices: none configured" in done.stderr
    assert "warning: sinks: none configured: readings stay in the store" in done.stderr
    clean = check(tmp_path, GOOD)
    assert clean.returncode == 0 and clean.stderr == ""


def test_an_influx_sink_needs_its_url_and_a_timeout_above_zero():
    found = problems(GOOD.replace('url: "http://127.0.0.1:8428"', "timeout: 0"))
    assert found == [
        "sinks[0].timeout: must be more than 0 seconds, got 0",
        "sinks[0].url: is required: where to write, e.g. http://127.0.0.1:8428 "
        "(VictoriaMetrics) or http://127.0.0.1:8086 (InfluxDB)",
    ]


def test_a_missing_environment_variable_is_one_error_not_two():
    text = GOOD.replace("{name: hall}", '{name: hall}\nmqtt: {port: "${CHECK_TEST_PORT}"}')
    assert problems(text) == ["mqtt.port: environment variable CHECK_TEST_PORT is not set "
                              "(write ${CHECK_TEST_PORT:-default} to give a default)"]
    key = GOOD + '  - {name: dd, type: datadog, api_key: "${CHECK_TEST_DD}"}\n'
    assert problems(key) == ["sinks[1].api_key: environment variable CHECK_TEST_DD is not set "
                             "(write ${CHECK_TEST_DD:-default} to give a default)"]
