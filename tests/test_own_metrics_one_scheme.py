"""The gateway's own metrics have one name each, the same in every destination, and are
documented; /metrics gives HELP and TYPE for every one; /health tells a supervisor
whether the gateway can take readings.

Once `gateway_received` sat beside `gateway.backlog_rows` in one database, /metrics
named them otherwise again, without HELP, and several were in no documentation.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

from paho.mqtt import publish

from gateway.health.ownmetrics import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
USED = re.compile(r'(?:\.inc|\.set|_reading)\(\s*"(gateway\.[a-z_.]+)"')
OUTCOMES = re.compile(r'f"gateway\.\{outcome\}"')


def test_every_name_the_code_uses_is_catalogued_with_one_dot():
    used = set()
    for path in (ROOT / "gateway").rglob("*.py"):
        text = path.read_text()
        used.update(USED.findall(text))
        used.update(f'gateway.{o}' for o in ("decoded", "partly_decoded", "ignored",
                                             "retained", "undecodable")
                    if OUTCOMES.search(text))
    assert used, "no metric names found: the pattern is wrong"
    assert sorted(used - set(CATALOGUE)) == []
    assert all(name.count(".") == 1 for name in CATALOGUE), \
        [n for n in CATALOGUE if n.count(".") != 1]
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in CATALOGUE)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_same_names_on_metrics_and_forwarded_and_health(mosquitto, make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 1},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "plug", "profile": "tasmota", "topic": "plug"}],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    })
    gw.start()
    publish.single("tele/plug/SENSOR", '{"ENERGY":{"Power":38}}', qos=1,
                   hostname=mosquitto.host, port=mosquitto.port)
    out = gw.data_dir / "readings.jsonl"

    def own() -> set[str]:
        if not out.exists():
            return set()
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        return {r["metric"] for r in lines if r["metric"].startswith("gateway.")}

    assert gw.wait_for(lambda s: {"gateway.received", "gateway.backlog_rows",
                                  "gateway.sink_state"} <= own(), 20), own()
    forwarded = own()
    assert forwarded <= set(CATALOGUE), forwarded - set(CATALOGUE)

    base = f"http://127.0.0.1:{gw.http_port}"
    status, text = _get(base + "/metrics")
    assert status == 200
    families = re.findall(r"^# TYPE (\S+) (counter|gauge)$", text, re.M)
    helped = dict(re.findall(r"^# HELP (\S+) (.+)$", text, re.M))
    by_prometheus = {m.prometheus: m for m in CATALOGUE.values()}
    assert families and all(name in by_prometheus for name, _ in families), families
    assert all(name in helped for name, _ in families)
    assert all(by_prometheus[name].kind == kind for name, kind in families)
    # Forwarded and scraped, one name: dots become underscores, counters add _total.
    scraped = {by_prometheus[name].name for name, _ in families}
    assert {"gateway.received", "gateway.backlog_rows", "gateway.store_bytes"} <= scraped
    assert 'gateway_backlog_rows{sink="local"}' in text
    assert "# HELP gateway_received_total MQTT messages received" in text

    assert _get(base + "/health") == (200, json.dumps(
        {"alive": True, "ready": True, "problems": []}))
    assert _get(base + "/health/ready")[0] == 200
    mosquitto.stop()
    assert gw.wait_for(lambda s: not s["mqtt"]["connected"], 20)
    code, body = _get(base + "/health/ready")
    assert code == 503, body
    assert json.loads(body)["problems"] == [
        f"not connected to the MQTT broker {mosquitto.host}:{mosquitto.port}"]
    assert _get(base + "/health")[0] == 200  # alive all the same
    shown = gw.cli("status", "--config", str(gw.config_path))
    assert shown.returncode == 1
    assert f"! not connected to the MQTT broker {mosquitto.host}:{mosquitto.port}" in \
        shown.stdout
