"""A GPS receiver on a serial port, read by a gateway process: the simulated van's
receiver on a real pseudo-terminal, its NMEA through the serial source and the nmea
profile into the file sink; pulled out and plugged back in without the gateway
restarting; status saying the port is gone meanwhile.

Real programs: Mosquitto (the gateway's local broker), a gateway process, pyserial on
a pseudo-terminal the simulator writes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


def gps_config(mosquitto, port: Path) -> dict:
    return {
        "gateway": {"name": "van-1", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "sources": [{"name": "gps", "type": "serial", "port": str(port),
                     "baudrate": 9600, "retry_min": 0.2, "retry_max": 0.5}],
        "devices": [{"id": "van-gps", "profile": "nmea", "source": "gps"}],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    }


def readings(gw) -> list[dict]:
    out = gw.data_dir / "readings.jsonl"
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines()]


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_the_vans_position_arrives_from_its_gps(mosquitto, make_gateway, van):
    gw = make_gateway(gps_config(mosquitto, van.gps_link))
    gw.start()
    assert wait_for(lambda: sum(r["metric"] == "gps.latitude" for r in readings(gw)) >= 3, 20)
    got = readings(gw)
    latitudes = [r for r in got if r["metric"] == "gps.latitude"]
    state = van.vehicle.state()
    # Parked at the start of its route, give or take the receiver's few metres of error.
    assert all(abs(r["value"] - state.lat) < 0.001 for r in latitudes), latitudes
    longitude = next(r for r in got if r["metric"] == "gps.longitude")
    assert abs(longitude["value"] - state.lon) < 0.001 and longitude["unit"] == "°"
    assert longitude["tags"]["device"] == "van-gps" and longitude["tags"]["gateway"] == "van-1"
    # A fix's readings carry its UTC time (whole seconds here), not the receive time.
    assert all(r["ts"] == int(r["ts"]) for r in latitudes), latitudes
    metrics = {r["metric"] for r in got}
    assert {"gps.fix", "gps.satellites", "gps.hdop", "gps.altitude", "gps.speed",
            "gps.course", "gps.fix_quality"} <= metrics, metrics
    src = gw.status()["sources"][0]
    assert src["name"] == "gps" and src["ready"] and src["opened"] == 1, src


def test_unplugged_and_plugged_back_it_carries_on(mosquitto, make_gateway, van):
    gw = make_gateway(gps_config(mosquitto, van.gps_link))
    gw.start()
    assert wait_for(lambda: any(r["metric"] == "gps.latitude" for r in readings(gw)), 20)
    van.unplug("gps")
    assert gw.wait_for(lambda s: not s["sources"][0]["ready"], 10), gw.status()
    status = gw.status()
    assert "went away" in status["sources"][0]["problem"] or \
        "cannot open" in status["sources"][0]["problem"], status["sources"][0]
    assert any("serial source gps" in h for h in status["health"]), status["health"]
    done = gw.cli("status", "--config", str(gw.config_path))
    assert done.returncode == 1 and "source gps (serial" in done.stdout, done.stdout
    assert "NOT READING" in done.stdout
    before = len(readings(gw))
    time.sleep(1.0)
    van.plug_in("gps")
    assert gw.wait_for(lambda s: s["sources"][0]["ready"], 10), gw.status()
    assert wait_for(lambda: sum(r["metric"] == "gps.latitude"
                                for r in readings(gw)[before:]) >= 2, 15)
    src = gw.status()["sources"][0]
    assert src["opened"] == 2, src
    assert gw.proc is not None and gw.proc.poll() is None  # the same process throughout
