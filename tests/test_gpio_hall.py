"""The hall's own sensors on the Pi's pins, through a whole gateway into its file sink:
a PIR (occupied from the first movement until none for the hold time), the main door's
reed switch (closed 1, open 0, its state at start), the "help" button (one count a
press), a DS18B20 read from its sysfs folder (a failed CRC and the 85 °C power-on value
are counted, not stored); a pin that cannot be had is named while the rest carry on.

gpiozero's mock pins (the gateway runs in this process so the test can drive them),
Mosquitto for the gateway's local broker, the file sink, a folder standing for sysfs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from reliability.inprocess import GatewayThread, TestClock

MOTION, DOOR, BUTTON = 17, 27, 22


def readings(gw: GatewayThread) -> list[dict]:
    out = gw.gateway.data_dir / "readings.jsonl"
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines()]


def values(gw: GatewayThread, metric: str, device: str) -> list[float]:
    return [r["value"] for r in readings(gw)
            if r["metric"] == metric and r["tags"]["device"] == device]


def wait_until(predicate, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def w1_slave(folder: Path, millidegrees: int, crc_ok: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    verdict = "YES" if crc_ok else "NO"
    (folder / "w1_slave").write_text(
        f"72 01 4b 46 7f ff 0e 10 57 : crc=57 {verdict}\n"
        f"72 01 4b 46 7f ff 0e 10 57 t={millidegrees}\n")


def test_the_halls_pins_become_readings(mosquitto, tmp_path, pins):
    probe = tmp_path / "sys" / "28-0316a2795aff"
    w1_slave(probe, 85000)  # before its first conversion
    config = {
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "store": {"commit_interval": 0.05},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "sources": [{"name": "pins", "type": "gpio", "inputs": [
            {"name": "hall-motion", "kind": "motion", "pin": MOTION, "hold": 1.0},
            {"name": "main-door", "kind": "contact", "pin": DOOR, "bounce": 0},
            {"name": "help", "kind": "button", "pin": BUTTON, "bounce": 0},
            {"name": "hall-temp", "kind": "ds18b20", "path": str(probe), "every": 0.2},
            {"name": "porch-light", "kind": "contact", "pin": 49}]}],
        "devices": [
            {"id": "hall-motion", "profile": "gpio", "source": "pins", "input": "hall-motion"},
            {"id": "main-door", "profile": "gpio", "source": "pins", "input": "main-door"},
            {"id": "help-button", "profile": "gpio", "source": "pins", "input": "help"},
            {"id": "hall-temp", "profile": "gpio", "source": "pins", "input": "hall-temp"}],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    }
    gw = GatewayThread(config, tmp_path, TestClock(time.time()))
    gw.start()
    try:
        # Open at start (the pull-up holds the pin high), then shut, opened and shut: a
        # closed reed switch pulls the pin low.
        assert wait_until(lambda: values(gw, "sensor.contact", "main-door") == [0.0])
        pins.pin(DOOR).drive_low()
        pins.pin(DOOR).drive_high()
        pins.pin(DOOR).drive_low()
        assert wait_until(lambda: values(gw, "sensor.contact", "main-door") ==
                          [0.0, 1.0, 0.0, 1.0])

        pins.pin(MOTION).drive_high()  # someone walks in
        pins.pin(MOTION).drive_low()
        pins.pin(MOTION).drive_high()  # moves again within the hold: still the one visit
        pins.pin(MOTION).drive_low()
        assert wait_until(lambda: values(gw, "sensor.occupancy", "hall-motion") == [1.0])
        assert wait_until(lambda: values(gw, "sensor.occupancy", "hall-motion") == [1.0, 0.0])

        for _ in range(3):
            pins.pin(BUTTON).drive_low()
            pins.pin(BUTTON).drive_high()
        assert wait_until(lambda: sum(values(gw, "sensor.button_presses", "help-button")) == 3)
        presses = [r for r in readings(gw) if r["metric"] == "sensor.button_presses"]
        assert all(r["type"] == "count" for r in presses)

        w1_slave(probe, 19437, crc_ok=False)
        time.sleep(0.5)
        w1_slave(probe, 19437)
        assert wait_until(lambda: 19.437 in values(gw, "climate.temperature", "hall-temp"))
        assert set(values(gw, "climate.temperature", "hall-temp")) == {19.437}
        counters = gw.gateway.stats.counters["gateway.gpio_dropped"]
        dropped = {dict(k)["reason"]: v for k, v in counters.items()}
        assert dropped.get("power_on_value", 0) >= 1 and dropped.get("crc", 0) >= 1, dropped

        # Pin 49 is no pin the mock Pi has: named, the other inputs read all along.
        health = gw.gateway.health()
        assert len(health) == 1 and "input porch-light" in health[0], health
        status = gw.status()
        source = next(s for s in status["sources"] if s["name"] == "pins")
        assert set(source["problems"]) == {"porch-light"} and not source["ready"]
    finally:
        gw.stop()
