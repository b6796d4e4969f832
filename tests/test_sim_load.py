"""`gateway-sim load`: N plugs at R messages a second reach the gateway, all decodable."""

from __future__ import annotations

import subprocess
import sys

import yaml

SIM = [sys.executable, "-m", "firmware_sim.cli"]  # the gateway-sim command


def test_load_mode_publishes_the_asked_rate_and_the_gateway_reads_it(mosquitto, make_gateway):
    devices, rate, seconds = 20, 5, 4
    printed = subprocess.run([*SIM, "load", "--devices", str(devices), "--print-config"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    gw = make_gateway({
        "gateway": {"name": "soak"},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": yaml.safe_load(printed)["devices"],
    })
    gw.start()
    done = subprocess.run([*SIM, "load", "--devices", str(devices), "--rate", str(rate),
                           "--duration", f"{seconds}s", "--broker",
                           f"{mosquitto.host}:{mosquitto.port}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    sent = int(last.split("sent ")[1].split()[0])
    # Paced by the wall clock: close to devices x rate x seconds on a loaded machine too.
    assert 0.8 * devices * rate * seconds <= sent <= 1.05 * devices * rate * seconds, last
    assert f"acknowledged {sent}" in last and "lost 0" in last
    assert gw.wait_for(lambda s: s["ingest"]["received"] >= sent, 30), gw.status()
    status = gw.status()
    assert status["ingest"]["undecodable"] == {}
    assert status["ingest"]["stored"] >= sent * 9  # nine ENERGY fields the profile reads
    heard = {d for d, v in status["devices"].items() if v["last_seen"] is not None}
    assert len(heard) == devices
