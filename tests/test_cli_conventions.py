"""The command line behaves as a user of such tools expects: options where they are typed,
help for every option, a default config, `--version` everywhere, plain text in pipes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HALL = ROOT / "deploy" / "examples" / "hall.yaml"
CONFIG_COMMANDS = [["run"], ["check"], ["decode"], ["status"], ["replay"], ["store", "stats"],
                   ["store", "check"], ["store", "export"], ["store", "vacuum"]]


def gateway(*args: str, env: dict[str, str] | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd=ROOT, input=stdin,
                          env={**environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_log_level_may_follow_the_subcommand():
    after = gateway("check", "--config", str(HALL), "--log-level", "DEBUG")
    assert after.returncode == 0, after.stderr
    before = gateway("--log-level", "DEBUG", "check", "--config", str(HALL))
    assert before.returncode == 0, before.stderr
    bad = gateway("check", "--log-level", "LOUD")
    assert bad.returncode == 2 and "invalid choice: 'LOUD'" in bad.stderr


@pytest.mark.parametrize("command", CONFIG_COMMANDS, ids=" ".join)
def test_every_config_option_says_what_it_is_and_its_default(command):
    shown = gateway(*command, "--help")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert re.search(r"--config FILE, -c FILE the gateway's YAML config.*default: "
                     r"\$GATEWAY_CONFIG, else /etc/edge-gateway/gateway.yaml", text) or \
        re.search(r"--config FILE the gateway's YAML config.*default: \$GATEWAY_CONFIG, "
                  r"else /etc/edge-gateway/gateway.yaml", text), text


def test_without_config_the_environment_then_the_installed_path_is_used():
    via_env = gateway("check", env={"GATEWAY_CONFIG": str(HALL)})
    assert via_env.returncode == 0, via_env.stderr
    assert via_env.stdout.startswith(f"{HALL}: OK")
    if Path("/etc/edge-gateway/gateway.yaml").exists():
        pytest.skip("this machine has an installed gateway config; the missing case cannot "
                    "be shown here")
    missing = gateway("check")
    assert missing.returncode == 1
    assert ("/etc/edge-gateway/gateway.yaml: 1 problem(s) in configuration:\n  <top>: cannot "
            "read config: No such file or directory (the default: give --config FILE or set "
            "GATEWAY_CONFIG") in missing.stderr


def test_both_commands_tell_their_version():
    assert gateway("--version").stdout.startswith("gateway ")
    sim = subprocess.run([sys.executable, "-m", "firmware_sim.cli", "--version"],
                         capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "firmware-sim")})
    assert sim.returncode == 0, sim.stderr
    assert re.match(r"gateway-sim \S+", sim.stdout)


def test_run_script_prints_no_colour_codes_into_a_pipe():
    done = subprocess.run([str(ROOT / "run"), "tests", "--collect-only", "-q",
                           "tests/test_config_errors.py"], capture_output=True, text=True,
                          timeout=600, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "==> running the tests" in done.stderr
    assert "\x1b[" not in done.stderr + done.stdout


def test_decode_as_a_configured_device(tmp_path):
    config = tmp_path / "hall.yaml"
    config.write_text("""\
gateway: {name: hall, tags: {site: kilnwick}}
devices:
  - {id: defib-socket, profile: tasmota, topic: defib_socket, priority: critical,
     tags: {room: entrance}}
  - {id: heating, profile: esphome, node: hall-heating}
""")
    done = gateway("decode", "--config", str(config), "--device", "defib-socket", "--topic",
                   "tele/defib_socket/SENSOR", "--payload", '{"ENERGY":{"Power":38}}')
    assert done.returncode == 0, done.stderr
    (reading,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert reading["metric"] == "plug.power" and reading["value"] == 38
    assert reading["priority"] == "critical"
    assert reading["tags"] == {"device": "defib-socket", "gateway": "hall", "site": "kilnwick",
                               "room": "entrance"}
    # A coded value comes with its meaning.
    mode = gateway("decode", "--config", str(config), "--device", "heating", "--topic",
                   "hall-heating/climate/hall/mode/state", "--payload", "heat")
    assert mode.returncode == 0, mode.stderr
    (reading,) = [json.loads(line) for line in mode.stdout.splitlines()]
    assert (reading["metric"], reading["value"], reading["means"], reading["map"]) == \
        ("climate.mode", 3, "heat", "climate_mode")
    unknown = gateway("decode", "--config", str(config), "--device", "boiler", "--topic", "x",
                      "--payload", "1")
    assert unknown.returncode == 1
    assert "no device 'boiler' in" in unknown.stderr and "defib-socket, heating" in \
        unknown.stderr
