"""Local checks, like a monitoring agent's: the built-in system and random checks and a
user's own check loaded from a file give readings at their intervals, each from its own
device; a check that raises and one that hangs are counted and named in status while
everything else carries on; `gateway check` names a check file's syntax error by file
and line.

Real programs: Mosquitto, a gateway process, the file sink.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TANK = '''\
from gateway.sources.check import Check


class RainTank(Check):
    """The rain tank's level, as a user would write it."""

    def check(self) -> None:
        self.gauge("tank.level", float(self.options["level"]), unit="%", tags={"tank": "rain"})
'''
BROKEN = '''\
from gateway.sources.check import Check


class Broken(Check):
    def check(self) -> None:
        raise RuntimeError("sensor unplugged")
'''
HANGS = '''\
import time

from gateway.sources.check import Check


class Hangs(Check):
    def check(self) -> None:
        time.sleep(3600)
'''


def readings(gw) -> list[dict]:
    out = gw.data_dir / "readings.jsonl"
    return [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []


def test_checks_give_readings_and_a_broken_or_hanging_one_stops_nothing(
        mosquitto, make_gateway, publisher):
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "devices": [{"id": "plug1", "profile": "tasmota", "topic": "plug1"}],
        "checks": [
            {"name": "system", "type": "system", "min_collection_interval": 1},
            {"name": "demo", "type": "random", "min_collection_interval": 0.5},
            {"name": "tank", "type": "custom", "file": "checks/tank.py",
             "min_collection_interval": 1, "options": {"level": 73.5}},
            {"name": "broken", "type": "custom", "file": "checks/broken.py",
             "min_collection_interval": 0.5},
            {"name": "stuck", "type": "custom", "file": "checks/hangs.py",
             "min_collection_interval": 0.5, "timeout": 0.5}],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    })
    folder = gw.config_path.parent / "checks"
    folder.mkdir()
    for name, text in (("tank", TANK), ("broken", BROKEN), ("hangs", HANGS)):
        (folder / f"{name}.py").write_text(text)
    gw.start()

    def got(metric: str) -> list[dict]:
        return [r for r in readings(gw) if r["metric"] == metric]

    assert gw.wait_for(lambda s: len(got("random.value")) >= 4 and got("tank.level")
                       and got("system.load_1"), 20), readings(gw)[-5:]
    tank = got("tank.level")[0]
    assert (tank["value"], tank["unit"], tank["tags"]["tank"], tank["tags"]["device"]) == \
        (73.5, "%", "rain", "tank")
    assert all(0 <= r["value"] <= 1000 and r["tags"]["device"] == "demo"
               for r in got("random.value"))
    assert got("system.disk_free")[0]["unit"] == "B" and \
        got("system.memory_used_percent")[0]["tags"]["device"] == "system"

    status = gw.status()
    checks = next(s for s in status["sources"] if s["type"] == "checks")["checks"]
    assert checks["broken"] == "RuntimeError: sensor unplugged", checks
    assert checks["stuck"] == "a run took longer than 0.5 s (still running)", checks
    assert checks["tank"] == "ok" and checks["system"] == "ok"
    assert any("check broken: RuntimeError: sensor unplugged" in h for h in status["health"])
    metrics = gw.metrics_text()
    assert 'gateway_check_runs_total{check="broken",result="error"}' in metrics
    assert 'gateway_check_runs_total{check="stuck",result="skipped"}' in metrics
    # Logged once, not every half second.
    assert gw.log_text().count("check broken: RuntimeError") == 1, gw.log_text()

    # Ingest was never held up: an MQTT message still goes straight through.
    before = len(got("random.value"))
    publisher.publish("tele/plug1/SENSOR", '{"ENERGY":{"Power":41}}', qos=1).wait_for_publish(5)
    assert gw.wait_for(lambda s: got("plug.power") and len(got("random.value")) > before + 2,
                       10)


def test_gateway_check_names_a_syntax_error_by_file_and_line(tmp_path):
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "tank.py").write_text(TANK.replace("def check(self) -> None:",
                                                              "def check(self) -> None"))
    config = tmp_path / "gateway.yaml"
    config.write_text("gateway: {name: hall}\n"
                      "checks: [{name: tank, type: custom, file: checks/tank.py}]\n")
    done = subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert done.returncode == 1
    assert f"checks[0].file: {tmp_path / 'checks' / 'tank.py'}:7: expected ':'" in done.stderr, \
        done.stderr
