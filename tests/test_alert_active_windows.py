"""A monitor limited to `active:` weekly windows judges only inside them (gateway's time
zone): lights on in the hall at night alert, by day they do not, and an alert open
when the window closes recovers."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.clock import ManualClock
from gateway.config.load import parse_config
from gateway.health.stats import Stats
from gateway.model import Reading
from gateway.notify.alerting import Alerting

LIGHTS_AT_NIGHT = {"name": "lights-at-night", "type": "state", "metric": "light.state",
                   "equals": 1, "duration": "0s", "active": ["daily 23:00-06:00"],
                   "message": "{{#is_alert}}Lights on at night{{/is_alert}}"
                              "{{#is_recovery}}Night over{{/is_recovery}}"}


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/London")).timestamp()


def test_lights_alert_only_inside_the_night_window(tmp_path):
    config = parse_config(json.dumps({
        "gateway": {"name": "hall", "timezone": "Europe/London"},
        "devices": [{"id": "bulb", "profile": "zigbee2mqtt", "friendly_name": "bulb"}],
        "people": [{"name": "ann", "channels": ["json://127.0.0.1:9/ann"]}],
        "monitors": [LIGHTS_AT_NIGHT]}), str(tmp_path / "gateway.yaml"))
    clock = ManualClock(at("2026-07-01T22:30"), "Europe/London")  # BST
    a = Alerting(config, tmp_path / "data", clock, Stats(), {})

    def lights_on() -> None:
        a.engine.take([Reading("light.state", 1.0, clock.now(), "gauge", "", {"device": "bulb"})])
        a.engine.tick()

    def said() -> list[str]:
        return [b for (b,) in a.journal.conn.execute("SELECT body FROM notifications")]

    lights_on()
    assert said() == []
    clock.set_now(at("2026-07-01T23:00"))
    lights_on()
    assert said() == ["Lights on at night"]
    clock.set_now(at("2026-07-02T05:59"))
    lights_on()
    clock.set_now(at("2026-07-02T06:00"))
    lights_on()
    assert said() == ["Lights on at night", "Night over"]
