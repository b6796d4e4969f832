"""`gateway check --config FILE`: exit 0 on a good config, 1 with every problem on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HALL = ROOT / "deploy" / "examples" / "hall.yaml"


def check(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "DD_KEY_FOR_CHECK_TEST"}
    return subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=config.parent,
                          check=False, env={**environ, "PYTHONPATH": str(ROOT), **env})


def test_the_example_hall_config_is_ok():
    done = check(HALL)
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout and "kilnwick-hall" in done.stdout
    assert "device defib-socket: profile tasmota, priority critical" in done.stdout
    assert "tele/defib_socket/SENSOR" in done.stdout  # what it will subscribe to
    assert done.stderr == ""


BROKEN = """\
gateway:
  name: hall
  data_dri: ./data
mqtt:
  port: not-a-port
store:
  durability: sometimes
devices:
  - {id: plug1, profile: sonoff, topic: plug1}
  - {id: plug2, profile: tasmota, priority: urgent}
  - {id: plug3, profile: tasmota, topic: plug3, colour: red}
sinks:
  - {name: vm, type: influx, url: "ftp://vm.local"}
  - {name: dd, type: datadog, api_key: "${DD_KEY_FOR_CHECK_TEST}", site: datadoghq.org}
  - {name: up, type: kafka}
"""


def test_a_broken_config_lists_every_problem_with_its_key_path(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text(BROKEN)
    done = check(config)
    assert done.returncode == 1
    assert done.stdout == ""
    err = done.stderr
    assert str(config) in err
    for key, words in [
        ("gateway.data_dri", "did you mean 'data_dir'"),
        ("mqtt.port", "must be an integer"),
        ("store.durability", "'full', 'normal'"),
        ("devices[0].profile", "unknown profile 'sonoff'"),
        ("devices[1].priority", "'urgent'"),
        ("devices[1].topic", "is required"),
        ("devices[2].colour", "unknown key"),
        ("sinks[0].url", "http://"),
        ("sinks[1].api_key", "DD_KEY_FOR_CHECK_TEST"),
        ("sinks[1].site", "datadoghq.eu"),
        ("sinks[2].type", "'kafka'"),
    ]:
        assert any(line.strip().startswith(f"{key}:") and words in line
                   for line in err.splitlines()), (key, err)
    assert "Traceback" not in err


def test_a_secret_in_a_broken_config_is_not_shown(tmp_path):
    config = tmp_path / "secret.yaml"
    config.write_text("gateway: {name: hall}\n"
                      "sinks:\n"
                      "  - {name: dd, type: datadog, api_key: '${DD_API_KEY}', site: nowhere}\n")
    done = check(config, DD_API_KEY="dd-secret-0123456789abcdef")
    assert done.returncode == 1
    assert "sinks[0].site" in done.stderr
    assert "dd-secret-0123456789abcdef" not in done.stderr + done.stdout


def test_unreadable_or_invalid_yaml_is_a_problem_not_a_crash(tmp_path):
    missing = check(tmp_path / "nowhere.yaml")
    assert missing.returncode == 1
    assert "cannot read config" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway: {name: hall\nmqtt: [")
    done = check(bad)
    assert done.returncode == 1
    assert "not valid YAML" in done.stderr and "line 2" in done.stderr
    assert "Traceback" not in missing.stderr + done.stderr
