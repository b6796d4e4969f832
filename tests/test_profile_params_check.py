"""`gateway check` finds device parameters that would make a bad metric name.

A parameter that ends up in a metric name (zigbee2mqtt's `state_metric`,
generic-json's field map) must leave a dotted name whose {captures} the message
really has. Before, such a mistake passed the check and raised KeyError on
every message at decode time; now `gateway check` exits 1 naming the key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """\
gateway: {name: hall}
devices:
  - {id: ok-bulb, profile: zigbee2mqtt, friendly_name: ok_bulb}
  - {id: relay, profile: zigbee2mqtt, friendly_name: relay, state_metric: plug.switch}
  - {id: bulb1, profile: zigbee2mqtt, friendly_name: bulb1, state_metric: "light.{room}"}
  - {id: bulb2, profile: zigbee2mqtt, friendly_name: bulb2, state_metric: "light.{0}"}
  - {id: bulb3, profile: zigbee2mqtt, friendly_name: bulb3, state_metric: "light."}
  - id: boiler
    profile: generic-json
    topic: hall/boiler/{part}/state
    fields:
      "": "boiler.{prat}"
      flow: "boiler.{part}.flow"
      burner: {metric: "boiler.burner}", unit: "%"}
  - id: probes
    profile: generic-json
    topic: hall/probes/{probe}
    fields: {"*": "probe.{key}", t: "probe.{probe}"}
"""


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=config.parent,
                          check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_parameters_that_make_bad_metric_names_fail_the_check_with_their_key(tmp_path):
    config = tmp_path / "hall.yaml"
    config.write_text(CONFIG)
    done = check(config)
    assert done.returncode == 1, done.stdout
    problems = [line.strip() for line in done.stderr.splitlines()[1:]]
    assert problems == [
        "devices[2].state_metric: metric 'light.{room}' uses {room}, which is not a capture "
        "of topic 'zigbee2mqtt/bulb1' (captures there: none)",
        "devices[3].state_metric: metric 'light.{0}': { and } may only enclose a capture "
        "name such as {channel}",
        "devices[4].state_metric: metric 'light.': a metric name is dotted words, with no "
        "empty part (e.g. light.state)",
        "devices[5].fields.: metric 'boiler.{prat}' uses {prat}, which is not a capture of "
        "topic 'hall/boiler/{part}/state' (captures there: {part})",
        "devices[5].fields.burner: metric 'boiler.burner}': { and } may only enclose a "
        "capture name such as {channel}",
    ], done.stderr


def test_the_same_devices_with_good_metric_names_pass(tmp_path):
    config = tmp_path / "hall.yaml"
    config.write_text("\n".join(line for line in CONFIG.splitlines()
                                if "bulb1" not in line and "bulb2" not in line
                                and "bulb3" not in line)
                      .replace("{prat}", "{part}").replace("burner}", "burner"))
    done = check(config)
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout
