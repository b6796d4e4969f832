"""A destination that refuses every request holds the sink and keeps its readings; only
readings refused one by one become dead letters, and `gateway store redeliver` sends
those again once the cause is fixed.

A mistyped VictoriaMetrics URL answers `400 unsupported path requested` to every
request. That once sent every reading, the defibrillator's included, to the dead
letters while status showed the sink idle.
"""

from __future__ import annotations

import json

from paho.mqtt import publish
from programs.faultproxy import FaultProxy

SENSOR = '{{"ENERGY":{{"Power":{power},"Voltage":238}}}}'


def hall(mosquitto, url: str) -> dict:
    return {
        "gateway": {"name": "hall", "self_metrics_interval": 60},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [
            {"id": "defib-socket", "profile": "tasmota", "topic": "defib", "priority": "critical"},
            {"id": "urn", "profile": "tasmota", "topic": "urn"},
        ],
        "sinks": [{"name": "vm", "type": "influx", "url": url, "batch_size": 50,
                   "backoff_min": 0.1, "backoff_max": 0.5}],
    }


def send(mosquitto, topic: str, powers: range) -> None:
    for power in powers:
        publish.single(f"tele/{topic}/SENSOR", SENSOR.format(power=power), qos=1,
                       hostname=mosquitto.host, port=mosquitto.port)


def test_a_mistyped_url_holds_the_sink_and_a_fixed_one_delivers_everything(
        mosquitto, victoria, make_gateway):
    gw = make_gateway(hall(mosquitto, victoria.url + "/vm"))  # meant: the base URL
    gw.start()
    send(mosquitto, "defib", range(30, 40))
    assert gw.wait_for(lambda s: s["sinks"][0]["state"] == "held", 20), gw.status()
    sink = gw.sink("vm")
    assert "HTTP 400" in sink["last_error"] and "unsupported path requested" in \
        sink["last_error"], sink
    assert sink["dropped"] == {} and sink["delivered"] == 0
    held = [line for line in gw.log_text().splitlines() if "HELD" in line]
    assert held and "unsupported path requested" in held[0], gw.log_text()[-3000:]
    assert 'gateway_sink_state{sink="vm",state="held"} 1' in gw.metrics_text()
    shown = gw.cli("status", "--config", str(gw.config_path))
    assert shown.returncode == 1 and "! sink vm is held: HTTP 400" in shown.stdout

    assert gw.stop() == 0
    stats = json.loads(gw.cli("store", "stats", "--json", "--config",
                              str(gw.config_path)).stdout)
    assert stats["dead_letters"] == [], stats["dead_letters"]

    # Fixed and restarted: everything kept arrives.
    gw.config["sinks"][0]["url"] = victoria.url
    gw.config_path.write_text(json.dumps(gw.config))
    gw.start()
    assert gw.wait_for(lambda s: s["sinks"][0]["delivered"] >= 20, 20), gw.sink("vm")
    victoria.flush()
    powers = sorted(v for s in victoria.export('{__name__="plug_power"}') for v in s["values"])
    assert powers == list(range(30, 40))


def test_readings_refused_one_by_one_are_dead_letters_and_can_be_redelivered(
        mosquitto, victoria, make_gateway):
    with FaultProxy(victoria.url) as proxy:
        gw = make_gateway(hall(mosquitto, proxy.url))
        gw.start()
        send(mosquitto, "urn", range(1, 3))  # the destination takes readings
        assert gw.wait_for(lambda s: s["sinks"][0]["delivered"] >= 4, 20), gw.sink("vm")
        # Now it refuses any request holding the defibrillator's lines, as InfluxDB
        # refuses a write for one line it cannot take.
        proxy.fault("400", refuse=b"device=defib-socket")
        send(mosquitto, "defib", range(30, 33))
        send(mosquitto, "urn", range(3, 6))
        assert gw.wait_for(lambda s: s["sinks"][0]["dropped"].get("rejected_400", 0) >= 6, 20), \
            gw.sink("vm")
        assert gw.wait_for(lambda s: s["sinks"][0]["delivered"] >= 10, 20), gw.sink("vm")
        sink = gw.sink("vm")
        assert sink["state"] in ("ok", "idle"), sink
        refused = [line for line in gw.log_text().splitlines() if "refused one by one" in line]
        assert refused and "unable to parse line: injected fault" in refused[0]
        assert gw.wait_for(lambda s: "vm/rejected_400" in (s.get("dead_letters") or {}), 20)

        # Fixed: put them back in the queue while the gateway runs.
        proxy.clear()
        done = gw.cli("store", "redeliver", "--sink", "vm", "--config", str(gw.config_path))
        assert done.returncode == 0, done.stderr
        assert "queued 6 dead letter(s) (6 reading(s)) for sink vm" in done.stdout
        assert f"the running gateway (pid {gw.proc.pid}) sends them" in done.stdout
        assert gw.wait_for(lambda s: not s.get("dead_letters"), 20), gw.status()
        victoria.flush()
        defib = sorted(v for s in victoria.export('{__name__="plug_power",device="defib-socket"}')
                       for v in s["values"])
        assert defib == [30, 31, 32]
        assert "dead-lettered reading(s) delivered on a second try" in gw.log_text()
        again = gw.cli("store", "redeliver", "--sink", "vm", "--config", str(gw.config_path))
        assert again.returncode == 1 and "no dead letters for sink 'vm'" in again.stderr
        gw.stop()
        shown = gw.cli("status", "--config", str(gw.config_path)).stdout
        assert "rejected_400" not in shown, shown
