"""Readings keep the time their device measured them, not the moment the gateway heard them.

The broker keeps what devices publish while the gateway is away (a restart, an
upgrade, a crash) and hands it all over at once when it is back. Stamped on
receipt, half a minute of readings would land within milliseconds: the outage
drawn as a spike. Here a Tasmota plug (local time in its own zone), a Shelly
(epoch seconds in its notifications) and a Zigbee2MQTT sensor (last_seen in
epoch milliseconds) publish while the gateway is stopped; each reading must
reach the destination with the device's own time. A plug whose clock never got
set (1970) is not believed: its reading is stamped on receipt, counted and
logged. A device-stamped reading older than its series' last one is kept in
order, and not taken for the gateway's clock going back.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
DEVICES = [
    # The plug's clock is set to New York time; the gateway's zone is UTC.
    {"id": "hall-plug", "profile": "tasmota", "topic": "hall_plug",
     "timezone": "America/New_York"},
    {"id": "old-plug", "profile": "tasmota", "topic": "old_plug"},
    # A device whose clock the user chose to ignore.
    {"id": "stage-plug", "profile": "tasmota", "topic": "stage_plug", "time": "receive"},
    {"id": "kitchen", "profile": "shelly", "prefix": "shellyplus1pm-kitchen"},
    {"id": "radiator", "profile": "zigbee2mqtt", "friendly_name": "hall/radiator"},
]


def tasmota_time(epoch: int, tz=NEW_YORK) -> str:
    """Tasmota's `Time`: the device's local time, no offset (its default)."""
    return datetime.fromtimestamp(epoch, tz).strftime("%Y-%m-%dT%H:%M:%S")


def publish(client, topic: str, payload: dict | str) -> None:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    client.publish(topic, data, qos=1).wait_for_publish(5)


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(text) for text in path.read_text().splitlines()]


def series(found: list[dict], device: str, metric: str) -> list[tuple[float, float]]:
    """(ts, value) of one device's metric, in the order the file holds them."""
    return [(d["ts"], d["value"]) for d in found
            if d["tags"]["device"] == device and d["metric"] == metric]


def test_queued_readings_keep_their_devices_time(mosquitto, make_gateway, publisher):
    gw = make_gateway({
        # Self-metrics each second: gateway.device_time_rejected is labelled with the
        # device it is about, which must not make that device look recently heard.
        "gateway": {"name": "hall", "self_metrics_interval": 1},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": DEVICES,
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    })
    out = gw.data_dir / "readings.jsonl"
    gw.start()
    assert gw.stop() == 0  # the broker now keeps the gateway's session while it is away

    base = int(time.time()) - 120
    for n, age in enumerate((90, 60, 30), start=1):  # a TelePeriod of 30 s
        publish(publisher, "tele/hall_plug/SENSOR",
                {"Time": tasmota_time(base - age), "ENERGY": {"Power": n, "Voltage": 230}})
    publish(publisher, "shellyplus1pm-kitchen/events/rpc",
            {"src": "shellyplus1pm-a8032ab13004", "dst": "shellyplus1pm-kitchen/events",
             "method": "NotifyStatus",
             "params": {"ts": base - 45.37, "switch:0": {"id": 0, "apower": 1840.5}}})
    publish(publisher, "zigbee2mqtt/hall/radiator",
            {"temperature": 18.6, "last_seen": (base - 20) * 1000 + 345, "linkquality": 120})
    publish(publisher, "tele/old_plug/SENSOR",
            {"Time": "1970-01-01T00:25:13", "ENERGY": {"Power": 7}})
    publish(publisher, "tele/stage_plug/SENSOR",
            {"Time": tasmota_time(base - 50, UTC), "ENERGY": {"Power": 8}})

    started = time.time()
    gw.start()
    assert gw.wait_for(lambda s: s["ingest"]["received"] >= 7
                       and s["sinks"][0]["delivered"] >= s["ingest"]["stored"] > 0, 30), \
        gw.status()
    found = lines(out)

    # Thirty seconds apart, as measured; not a burst at the restart.
    assert series(found, "hall-plug", "plug.power") == [
        (base - 90, 1), (base - 60, 2), (base - 30, 3)]
    assert [ts for ts, _ in series(found, "hall-plug", "plug.voltage")] == [
        base - 90, base - 60, base - 30]
    [(ts, value)] = series(found, "kitchen", "plug.power")
    assert value == 1840.5 and abs(ts - (base - 45.37)) < 0.0015
    [(ts, value)] = series(found, "radiator", "climate.temperature")
    assert value == 18.6 and abs(ts - (base - 20 + 0.345)) < 0.0015

    # A clock stuck in 1970 is not believed: stamped on receipt, counted, logged.
    [(ts, value)] = series(found, "old-plug", "plug.power")
    assert value == 7 and started - 1 <= ts <= time.time() + 1
    [(ts, value)] = series(found, "stage-plug", "plug.power")  # `time: receive`
    assert value == 8 and started - 1 <= ts <= time.time() + 1
    status = gw.status()
    assert status["ingest"]["device_time_rejected"] == {"old-plug/behind": 1}
    assert re.search(r'^gateway_device_time_rejected_total\{device="old-plug",'
                     r'reason="behind"\} 1(\.0)?$', gw.metrics_text(), re.MULTILINE)
    [warning] = [line for line in gw.log_text().splitlines()
                 if " WARNING " in line and "old-plug" in line]
    assert "clock is" in warning and "days behind" in warning and "stamped on receipt" in warning
    shown = gw.cli("status", "--config", str(gw.config_path))
    assert "device clock not believed (behind), old-plug: 1" in shown.stdout, shown.stdout
    heard = status["devices"]["old-plug"]
    time.sleep(2.5)  # two rounds of self-metrics
    assert gw.status()["devices"]["old-plug"] == heard
    # Heard when its message came (the store may move a stamp on by a millisecond or
    # two to keep a series' stamps unique), not when self-metrics ran seconds later.
    assert abs(heard["last_seen"] - ts) < 0.01 and list(heard["values"]) == ["plug.power"]

    # A relay switched by hand is stamped on receipt (stat/ carries no time); the plug's
    # next STATE, measured 40 s earlier by its own clock, is kept, in order, after it,
    # and is not mistaken for the gateway's clock going back.
    now = int(time.time())
    publish(publisher, "stat/hall_plug/POWER", "ON")
    assert gw.wait_for(lambda s: s["ingest"]["received"] >= 8, 10)
    publish(publisher, "tele/hall_plug/STATE",
            {"Time": tasmota_time(now - 40), "UptimeSec": 600, "POWER": "OFF"})
    assert gw.wait_for(lambda s: s["ingest"]["received"] >= 9
                       and s["sinks"][0]["delivered"] >= s["ingest"]["stored"], 20)
    switch = series(lines(out), "hall-plug", "plug.switch")
    assert [value for _, value in switch] == [1, 0]
    assert switch[0][0] < switch[1][0] < switch[0][0] + 0.01
    [(uptime_ts, _)] = series(lines(out), "hall-plug", "device.uptime")
    assert uptime_ts == now - 40  # its own series: the device's time as it is
    assert "timestamps_shifted" not in gw.metrics_text()
    assert "clock went back" not in gw.log_text()
    assert gw.stop() == 0


def test_bad_device_time_settings_are_config_errors(tmp_path: Path):
    config = tmp_path / "gateway.yaml"
    config.write_text(json.dumps({
        "gateway": {"name": "hall", "device_time": {"max_ahead": "30s", "max_behind": "20s"}},
        "devices": [{"id": "plug", "profile": "tasmota", "topic": "plug",
                     "timezone": "Europe/Londn", "time": "never"}],
    }))
    done = subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "gateway.device_time.max_behind: must be at least 1m" in done.stderr
    assert "devices[0].timezone: unknown time zone 'Europe/Londn'" in done.stderr
    assert "devices[0].time: must be one of 'device', 'receive'" in done.stderr


def test_decode_shows_the_device_time_it_used_or_why_not():
    """`gateway decode` stamps with the payload's time when it is believable, else says why."""
    now = int(time.time()) - 5
    good = json.dumps({"Time": tasmota_time(now, UTC), "ENERGY": {"Power": 38}})
    done = subprocess.run([sys.executable, "-m", "gateway", "decode", "--profile", "tasmota",
                           "--param", "topic=plug1", "--topic", "tele/plug1/SENSOR",
                           "--payload", good], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ts"] == now
    bad = json.dumps({"Time": "2000-01-01T00:00:07", "ENERGY": {"Power": 38}})
    done = subprocess.run([sys.executable, "-m", "gateway", "decode", "--profile", "tasmota",
                           "--param", "topic=plug1", "--topic", "tele/plug1/SENSOR",
                           "--payload", bad], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert abs(json.loads(done.stdout)["ts"] - time.time()) < 30
    assert "device time not believed (behind)" in done.stderr
    assert "days behind" in done.stderr and "'2000-01-01T00:00:07'" in done.stderr
