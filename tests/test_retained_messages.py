"""A retained message handed over on subscribing is the last known state, not a new reading.

The broker keeps the last retained message of each topic and delivers it to
every new subscription (the gateway subscribes on each start). Taken as a
reading, a dead sensor's last value would be stored again after every restart
and the sensor would look alive. Instead it updates the latest values, marked
retained (its age unknown), stores nothing and leaves `last_seen` alone; a
retained last will still says the device is offline. Messages published while
the gateway listens, or while it is away in its session, are readings as
always, retained or not. A profile may say a topic's retained messages are
readings (`retained: reading`).
"""

from __future__ import annotations

import json
from pathlib import Path

METER_PROFILE = """\
profile: retained-meter
description: A meter that publishes each reading retained (for the test).
params: {name: {description: the meter's name}}
messages:
  - topic: meter/{name}/state
    retained: reading
    fields: [{path: kwh, metric: meter.energy, unit: kWh}]
examples:
  - params: {name: main}
    topic: meter/main/state
    payload: {kwh: 1.5}
    readings: [{metric: meter.energy, value: 1.5}]
"""


def publish(client, topic: str, payload: dict | str, retain: bool = False) -> None:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    client.publish(topic, data, qos=1, retain=retain).wait_for_publish(5)


def stored(path: Path, device: str, metric: str) -> list[float]:
    if not path.exists():
        return []
    found = [json.loads(line) for line in path.read_text().splitlines()]
    return [d["value"] for d in found if d["tags"]["device"] == device and d["metric"] == metric]


def test_retained_state_is_shown_not_stored(mosquitto, make_gateway, publisher, tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "retained-meter.yaml").write_text(METER_PROFILE)
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600,
                    "profiles_dirs": [str(profiles)]},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "porch-plug", "profile": "tasmota", "topic": "porch_plug"},
                    {"id": "meter", "profile": "retained-meter", "name": "main"}],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    })
    out = gw.data_dir / "readings.jsonl"
    # The plug's last message, retained, and its last will: it died before the
    # gateway ever subscribed. The meter publishes everything retained.
    publish(publisher, "tele/porch_plug/SENSOR",
            {"Time": "2026-11-20T10:15:00", "ENERGY": {"Power": 77}}, retain=True)
    publish(publisher, "tele/porch_plug/LWT", "Offline", retain=True)
    publish(publisher, "meter/main/state", {"kwh": 1234.5}, retain=True)

    for start in (1, 2):  # the first start, and a routine restart (session resumed)
        gw.start()
        assert gw.wait_for(lambda s: s["ingest"]["received"] >= 3
                           and s["sinks"][0]["delivered"] >= s["ingest"]["stored"], 20), \
            gw.status()
        status = gw.status()
        assert status["ingest"]["retained"] == 2, (start, status["ingest"])
        plug = status["devices"]["porch-plug"]
        assert plug["values"]["plug.power"] == [77, "W"]
        assert {"plug.power", "device.online"} <= set(plug["retained"])
        assert plug["online"] is False  # the retained last will still counts
        assert plug["last_seen"] is None  # nothing heard from it: not alive
        assert stored(out, "porch-plug", "plug.power") == [], start
        assert stored(out, "porch-plug", "device.online") == [], start
        # `retained: reading`: stored again on each subscription, as the profile asks.
        assert stored(out, "meter", "meter.energy") == [1234.5] * start
        shown = gw.cli("status", "--config", str(gw.config_path)).stdout
        assert "retained 2, undecodable 0" in shown, shown
        assert ("porch-plug  OFFLINE, nothing heard yet (values marked * are the broker's "
                "retained last state, of unknown age)") in shown, shown
        assert "plug.power* 77 W" in shown, shown
        if start == 1:
            assert gw.stop() == 0

    # Heard live, a message is a reading, retained or not, and dates the device.
    publish(publisher, "tele/porch_plug/LWT", "Online", retain=True)
    publish(publisher, "tele/porch_plug/SENSOR", {"ENERGY": {"Power": 80}})
    assert gw.wait_for(lambda s: s["devices"]["porch-plug"]["last_seen"] is not None
                       and s["devices"]["porch-plug"]["values"]["plug.power"][0] == 80, 20)
    plug = gw.status()["devices"]["porch-plug"]
    assert plug["online"] is True and plug["retained"] == []
    assert stored(out, "porch-plug", "device.online") == [1]

    # Published retained while the gateway is away, a message waits in its session
    # as a reading; only the copy handed over on subscribing again is state.
    assert gw.stop() == 0
    publish(publisher, "tele/porch_plug/SENSOR", {"ENERGY": {"Power": 81}}, retain=True)
    gw.start()
    assert gw.wait_for(lambda s: s["ingest"]["received"] >= 4
                       and s["sinks"][0]["delivered"] >= s["ingest"]["stored"], 20), \
        gw.status()
    assert gw.wait_for(lambda s: stored(out, "porch-plug", "plug.power") == [80, 81], 10), \
        stored(out, "porch-plug", "plug.power")
    status = gw.status()
    assert status["ingest"]["retained"] == 2  # the plug's SENSOR and LWT copies
    assert status["devices"]["porch-plug"]["values"]["plug.power"][0] == 81
    assert status["devices"]["porch-plug"]["last_seen"] is not None
    assert gw.stop() == 0
