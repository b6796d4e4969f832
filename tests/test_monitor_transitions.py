"""Monitors move between OK, WARN, ALERT and NO DATA as Datadog's do, and each move
queues the right message for the right people in alerts.db.

The monitors' real engine, rota, dispatcher and journal (SQLite in a temporary
folder), fed committed readings as the fan-out would and stepped by a
ManualClock; what is checked is what the committee would receive.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.clock import ManualClock
from gateway.config.load import parse_config
from gateway.health.stats import Stats
from gateway.model import Reading
from gateway.notify.alerting import Alerting

T0 = 1_790_000_000.0  # a Tuesday, 14:13 UTC

HALL = {
    "gateway": {"name": "hall", "timezone": "Europe/London"},
    "devices": [
        {"id": "urn", "profile": "tasmota", "topic": "urn", "tags": {"room": "kitchen"}},
        {"id": "defib-socket", "profile": "tasmota", "topic": "defib"},
    ],
    "people": [
        {"name": "ann", "channels": ["json://127.0.0.1:9/ann"]},
        {"name": "bob", "channels": ["json://127.0.0.1:9/bob"], "available": ["Sat,Sun"]},
    ],
}


def alerting(tmp_path: Path, monitors: list[dict], clock: ManualClock,
             people: list[dict] | None = None) -> Alerting:
    config = parse_config(json.dumps({**HALL, "monitors": monitors,
                                      **({"people": people} if people else {})}),
                          str(tmp_path / "gateway.yaml"))
    tags = {"urn": {"device": "urn", "room": "kitchen", "gateway": "hall"},
            "defib-socket": {"device": "defib-socket", "gateway": "hall"}}
    return Alerting(config, tmp_path / "data", clock, Stats(), tags)


def power(device: str, value: float, ts: float) -> Reading:
    return Reading("plug.power", value, ts, "gauge", "W", {"device": device, "gateway": "hall"})


def sent(a: Alerting) -> list[tuple[str, str, str, str]]:
    """(transition, person, state, body) of every notification queued, oldest first."""
    rows = a.journal.conn.execute("SELECT transition, person, state, body FROM notifications "
                                  "ORDER BY id").fetchall()
    return [tuple(r) for r in rows]


URN_HOT = {"name": "urn-left-on", "type": "threshold", "metric": "plug.power",
           "aggregation": "avg", "window": "5m", "devices": ["urn"],
           "critical": 2000, "critical_recovery": 100, "warning": 1500,
           "message": "{{#is_alert}}The {{tags.room}} urn draws {{value}} W "
                      "(over {{threshold}}).{{/is_alert}}"
                      "{{#is_warning}}Urn at {{value}} W.{{/is_warning}}"
                      "{{#is_alert_recovery}}Urn off again.{{/is_alert_recovery}}"
                      "{{#is_warning_recovery}}Urn calm.{{/is_warning_recovery}}"}


def test_threshold_alerts_holds_through_the_hysteresis_and_recovers(tmp_path):
    clock = ManualClock(T0)
    a = alerting(tmp_path, [URN_HOT], clock)
    a.engine.take([power("urn", 2400, T0)])
    assert sent(a) == [("OK -> ALERT", "ann", "pending",
                        "The kitchen urn draws 2400 W (over 2000).")]
    # Out of the window the old reading goes; 1800 is below critical but above its
    # recovery value: still ALERT, nothing new said.
    clock.advance(400)
    a.engine.take([power("urn", 1800, clock.now())])
    assert len(sent(a)) == 1
    assert a.engine.open()[0][2].status == "ALERT"
    clock.advance(400)
    a.engine.take([power("urn", 50, clock.now())])
    assert sent(a)[-1] == ("ALERT -> OK", "ann", "pending", "Urn off again.")
    assert a.engine.open() == []
    [alert] = a.journal.alerts(open_only=False)
    assert alert.closed == clock.now() and alert.opened == T0


def test_warning_then_alert_then_warning_recovery(tmp_path):
    clock = ManualClock(T0)
    monitor = {**URN_HOT, "critical_recovery": None, "window": "1m"}
    a = alerting(tmp_path, [monitor], clock)
    a.engine.take([power("urn", 1600, T0)])
    clock.advance(63)  # past the window and its bucket (2 s)
    a.engine.take([power("urn", 2100, clock.now())])
    clock.advance(63)  # past the window and its bucket (2 s)
    a.engine.take([power("urn", 1600, clock.now())])
    clock.advance(63)  # past the window and its bucket (2 s)
    a.engine.take([power("urn", 10, clock.now())])
    assert [(t, body) for t, _, _, body in sent(a)] == [
        ("OK -> WARN", "Urn at 1600 W."),
        ("WARN -> ALERT", "The kitchen urn draws 2100 W (over 2000)."),
        ("ALERT -> WARN", "Urn at 1600 W."),
        ("WARN -> OK", "Urn calm."),
    ]
    # one alert for the whole episode
    assert len(a.journal.alerts(open_only=False)) == 1


def test_a_window_that_empties_leaves_the_status_as_it_was(tmp_path):
    clock = ManualClock(T0)
    a = alerting(tmp_path, [URN_HOT], clock)
    a.engine.take([power("urn", 2400, T0)])
    clock.advance(3600)
    a.engine.tick()
    assert a.engine.open()[0][2].status == "ALERT"
    assert len(sent(a)) == 1


DEFIB = {"name": "defib-power", "type": "state", "metric": "plug.power",
         "devices": ["defib-socket"], "below": 5, "duration": "60s", "safety_critical": True,
         "notify": ["on_duty"],
         "message": "{{#is_alert}}Defibrillator socket: no power for {{duration}}."
                    "{{/is_alert}}{{#is_recovery}}Defibrillator power back.{{/is_recovery}}"}


def test_a_state_held_long_enough_alerts_and_a_blip_does_not(tmp_path):
    clock = ManualClock(T0)
    a = alerting(tmp_path, [DEFIB], clock)
    a.engine.take([power("defib-socket", 0.5, T0)])
    clock.advance(30)
    a.engine.tick()
    a.engine.take([power("defib-socket", 31, clock.now())])  # back before 60 s: a blip
    clock.advance(60)
    a.engine.tick()
    assert sent(a) == []
    a.engine.take([power("defib-socket", 0.0, clock.now())])
    clock.advance(59)
    a.engine.tick()
    assert sent(a) == []
    clock.advance(1)
    a.engine.tick()
    assert sent(a) == [("OK -> ALERT", "ann", "pending",
                        "Defibrillator socket: no power for 60 s.")]
    a.engine.take([power("defib-socket", 30, clock.now())])
    assert sent(a)[-1][0::3] == ("ALERT -> OK", "Defibrillator power back.")


def test_safety_critical_reaches_everyone_when_nobody_is_on_duty(tmp_path):
    clock = ManualClock(T0)  # a Tuesday: bob only does weekends, ann is away
    people = [{"name": "ann", "channels": ["json://127.0.0.1:9/ann"],
               "available": ["Mon-Fri 09:00-17:00"],
               "away": [{"start": "2026-09-20", "end": "2026-09-30"}]},
              {"name": "bob", "channels": ["json://127.0.0.1:9/bob"], "available": ["Sat,Sun"]}]
    routine = {**URN_HOT, "notify": ["on_duty"]}
    a = alerting(tmp_path, [DEFIB, routine], clock, people)
    assert a.rota.on_duty(T0) == []
    a.engine.take([power("defib-socket", 0, T0), power("urn", 2500, T0)])
    clock.advance(60)
    a.engine.tick()
    told = {(t, person, state) for t, person, state, _ in sent(a)}
    assert told == {("OK -> ALERT", "", "nobody"),  # the urn: nobody on duty, recorded
                     ("OK -> ALERT", "ann", "pending"), ("OK -> ALERT", "bob", "pending")}
    [why] = [r[0] for r in a.journal.conn.execute(
        "SELECT error FROM notifications WHERE state = 'nobody'")]
    assert "on duty: nobody" in why


NO_DATA = {"name": "plug-silent", "type": "no_data", "devices": ["urn"], "timeframe": "10m",
           "metric": "plug.power",
           "message": "{{#is_no_data}}{{device.name}} silent.{{/is_no_data}}"
                      "{{#is_no_data_recovery}}{{device.name}} back.{{/is_no_data_recovery}}"}


def test_silence_is_no_data_and_a_last_will_is_no_data_at_once(tmp_path):
    clock = ManualClock(T0)
    a = alerting(tmp_path, [NO_DATA], clock)
    clock.advance(599)
    a.engine.tick()
    assert sent(a) == []
    clock.advance(2)
    a.engine.tick()
    assert sent(a)[-1][0::3] == ("OK -> NO DATA", "urn silent.")
    a.engine.take([power("urn", 3, clock.now())])
    assert sent(a)[-1][0::3] == ("NO DATA -> OK", "urn back.")
    offline = Reading("device.online", 0.0, clock.now(), "gauge", "", {"device": "urn"})
    a.engine.take([offline])
    assert sent(a)[-1][0::3] == ("OK -> NO DATA", "urn silent.")


def test_a_restart_neither_repeats_nor_forgets(tmp_path):
    clock = ManualClock(T0)
    a = alerting(tmp_path, [URN_HOT, NO_DATA, DEFIB], clock)
    a.engine.take([power("urn", 2400, T0), power("defib-socket", 0, T0)])
    clock.advance(601)
    a.engine.tick()
    before = sent(a)
    assert {t for t, *_ in before} == {"OK -> ALERT", "OK -> NO DATA"}
    a.journal.close()

    b = alerting(tmp_path, [URN_HOT, NO_DATA, DEFIB], clock)
    clock.advance(1)
    # the defibrillator still without power: its condition starts afresh, the alert stays
    b.engine.take([power("defib-socket", 0, clock.now())])
    b.engine.tick()
    assert sent(b) == before
    assert {(m, s.status) for m, _, s in b.engine.open()} == {
        ("urn-left-on", "ALERT"), ("plug-silent", "NO DATA"), ("defib-power", "ALERT")}
    # the urn speaks, off: both its alerts recover, once each
    b.engine.take([power("urn", 20, clock.now())])
    assert sent(b)[len(before):] == [("ALERT -> OK", "ann", "pending", "Urn off again."),
                                     ("NO DATA -> OK", "ann", "pending", "urn back.")]


def test_renotify_until_acknowledged(tmp_path):
    clock = ManualClock(T0)
    a = alerting(tmp_path, [{**URN_HOT, "renotify_interval": "30m", "window": "2h",
                             "message": "{{#is_alert}}hot{{#is_renotify}} still"
                                        "{{/is_renotify}}{{/is_alert}}"}], clock)
    a.engine.take([power("urn", 2400, T0)])
    clock.advance(1799)
    a.engine.tick()
    assert [b for *_, b in sent(a)] == ["hot"]
    clock.advance(1)
    a.engine.tick()
    assert [b for *_, b in sent(a)] == ["hot", "hot still"]
    [alert] = a.journal.alerts()
    a.journal.acknowledge(alert.id, "ann", clock.now(), "cli")
    clock.advance(3600)
    a.engine.tick()
    assert [b for *_, b in sent(a)] == ["hot", "hot still"]
