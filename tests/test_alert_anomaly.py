"""An anomaly monitor learns a rolling band from the trailing history (Datadog's `basic`
algorithm in spirit: the mean of the recent past plus or minus `bounds` deviations)
and alerts when the recent average leaves it; the band's edges are in the message."""

from __future__ import annotations

import json
import math

from gateway.clock import ManualClock
from gateway.config.load import parse_config
from gateway.config.validate import ConfigError
from gateway.health.stats import Stats
from gateway.model import Reading
from gateway.notify.alerting import Alerting

T0 = 1_790_000_000.0

FRIDGE = {"name": "fridge-odd", "type": "anomaly", "metric": "plug.power",
          "devices": ["fridge"], "window": "2h", "alert_window": "5m", "bounds": 3,
          "message": "{{#is_alert}}Fridge at {{value}} W, usual {{anomaly.lower}}-"
                     "{{anomaly.upper}} W{{/is_alert}}{{#is_recovery}}Fridge usual again"
                     "{{/is_recovery}}"}


def alerting(tmp_path, monitor: dict, clock: ManualClock) -> Alerting:
    config = parse_config(json.dumps({
        "gateway": {"name": "hall"},
        "devices": [{"id": "fridge", "profile": "tasmota", "topic": "fridge"}],
        "people": [{"name": "ann", "channels": ["json://127.0.0.1:9/ann"]}],
        "monitors": [monitor]}), str(tmp_path / "gateway.yaml"))
    return Alerting(config, tmp_path / "data", clock, Stats(), {})


def said(a: Alerting) -> list[str]:
    return [b for (b,) in a.journal.conn.execute("SELECT body FROM notifications ORDER BY id")]


def test_a_fridge_that_runs_hot_is_an_anomaly_and_its_band_is_told(tmp_path):
    clock = ManualClock(T0)
    a = alerting(tmp_path, FRIDGE, clock)
    # Two hours of a fridge cycling 60-100 W, one reading a minute.
    for minute in range(120):
        clock.set_now(T0 + minute * 60)
        value = 80 + 20 * math.sin(minute / 5)
        a.engine.take([Reading("plug.power", value, clock.now(), "gauge", "W",
                               {"device": "fridge"})])
        a.engine.tick()
    assert said(a) == []
    # Its compressor stuck on: 250 W for five minutes.
    for minute in range(120, 126):
        clock.set_now(T0 + minute * 60)
        a.engine.take([Reading("plug.power", 250.0, clock.now(), "gauge", "W",
                               {"device": "fridge"})])
        a.engine.tick()
    [alert] = said(a)
    value = float(alert.split(" W,")[0].removeprefix("Fridge at "))
    low, high = (float(x) for x in alert.split("usual ")[1].removesuffix(" W").split("-"))
    assert 30 < low < 80 < high < 150 and value > high, alert
    # Back to normal: recovery once the recent average is inside the band again.
    for minute in range(126, 140):
        clock.set_now(T0 + minute * 60)
        a.engine.take([Reading("plug.power", 80.0, clock.now(), "gauge", "W",
                               {"device": "fridge"})])
        a.engine.tick()
    assert said(a)[-1] == "Fridge usual again"


def test_too_little_history_judges_nothing(tmp_path):
    clock = ManualClock(T0)
    a = alerting(tmp_path, FRIDGE, clock)
    for minute in range(3):
        clock.set_now(T0 + minute * 60)
        a.engine.take([Reading("plug.power", 1000.0 * minute, clock.now(), "gauge", "W",
                               {"device": "fridge"})])
        a.engine.tick()
    assert said(a) == []


def test_the_alert_window_must_be_shorter_than_the_history(tmp_path):
    bad = {**FRIDGE, "window": "5m", "alert_window": "10m"}
    try:
        alerting(tmp_path, bad, ManualClock(T0))
    except ConfigError as exc:
        assert "monitors[0].alert_window" in str(exc)
    else:
        raise AssertionError("a config error was expected")
