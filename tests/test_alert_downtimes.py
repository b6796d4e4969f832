"""Downtimes silence routine monitors at the committee's quiet hours, correctly across
the Europe/London clock changes, and never silence the defibrillator; availability
follows the same wall clock; escalation tells further people until someone
acknowledges.

The real engine, rota, downtimes and journal on a ManualClock (see
test_monitor_transitions for the fixtures' shape).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.clock import ManualClock
from gateway.config.load import parse_config
from gateway.health.stats import Stats
from gateway.model import Reading
from gateway.notify.alerting import Alerting

LONDON = ZoneInfo("Europe/London")


def at(text: str) -> float:
    """A London wall-clock time as UTC seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=LONDON).timestamp()


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("UTC")).timestamp()


QUIET = [
    {"name": "weeknights", "windows": ["Mon-Fri 19:00-09:00"]},
    {"name": "weekend", "windows": ["Sat,Sun", "Mon 00:00-09:00"], "notify_end": True},
]


def alerting(tmp_path: Path, clock: ManualClock, monitors: list[dict],
             downtimes: list[dict] = QUIET, people: list[dict] | None = None) -> Alerting:
    config = parse_config(json.dumps({
        "gateway": {"name": "hall", "timezone": "Europe/London"},
        "devices": [{"id": "urn", "profile": "tasmota", "topic": "urn"},
                    {"id": "defib-socket", "profile": "tasmota", "topic": "defib"}],
        "people": people or [{"name": "ann", "channels": ["json://127.0.0.1:9/ann"]},
                             {"name": "bob", "channels": ["json://127.0.0.1:9/bob"]}],
        "monitors": monitors, "downtimes": downtimes}), str(tmp_path / "gateway.yaml"))
    tags = {d: {"device": d, "gateway": "hall"} for d in ("urn", "defib-socket")}
    return Alerting(config, tmp_path / "data", clock, Stats(), tags)


def power(device: str, value: float, ts: float) -> Reading:
    return Reading("plug.power", value, ts, "gauge", "W", {"device": device})


def notices(a: Alerting) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in a.journal.conn.execute(
        "SELECT transition, person, state FROM notifications ORDER BY id")]


URN = {"name": "urn-left-on", "type": "threshold", "metric": "plug.power",
       "aggregation": "last", "window": "1h", "devices": ["urn"], "critical": 2000,
       "notify": ["ann"]}
DEFIB = {"name": "defib-power", "type": "state", "metric": "plug.power",
         "devices": ["defib-socket"], "below": 5, "duration": "0s", "safety_critical": True,
         "notify": ["ann"]}


@pytest.mark.parametrize(("moment", "quiet"), [
    ("2026-03-27T18:59", set()),  # Friday evening, GMT
    ("2026-03-27T19:00", {"weeknights"}),
    ("2026-03-28T08:59", {"weeknights", "weekend"}),  # Saturday: Friday's night too
    ("2026-03-29T12:00", {"weekend"}),  # the Sunday the clocks go forward
    ("2026-03-30T08:59", {"weekend"}),  # Monday morning, BST
    ("2026-03-30T09:00", set()),
    ("2026-10-26T08:30", {"weekend"}),  # the Monday after the clocks went back, GMT
    ("2026-10-26T12:00", set()),
])
def test_quiet_hours_on_the_wall_clock_across_the_changes(tmp_path, moment, quiet):
    a = alerting(tmp_path, ManualClock(at(moment), "Europe/London"), [URN])
    assert {d.config.name for d in a.downtimes.all if d.active(at(moment))} == quiet
    found = a.downtimes.silencing("urn-left-on", [("device", "urn")], at(moment))
    assert (found is not None) == bool(quiet)


@pytest.mark.parametrize(("moment_utc", "active"), [
    ("2026-03-29T07:30", True),  # 08:30 BST: within 19:00 + 14h of the night before
    ("2026-03-29T08:00", False),  # 09:00 BST: over, although only 13 h have passed
    ("2026-10-25T08:30", True),  # 08:30 GMT
    ("2026-10-25T09:00", False),  # 09:00 GMT: 15 h after 19:00 BST
])
def test_an_rrule_downtime_keeps_its_wall_clock_end_across_the_changes(tmp_path, moment_utc,
                                                                        active):
    nightly = [{"name": "nights", "rrule": "FREQ=DAILY", "start": "2026-01-01T19:00",
                "duration": "14h"}]
    a = alerting(tmp_path, ManualClock(utc(moment_utc), "Europe/London"), [URN], nightly)
    assert (a.downtimes.silencing("urn-left-on", [], utc(moment_utc)) is not None) == active


def test_availability_follows_the_wall_clock(tmp_path):
    people = [{"name": "ann", "channels": ["json://127.0.0.1:9/ann"],
               "available": ["Mon-Fri 09:00-17:00"]}]
    a = alerting(tmp_path, ManualClock(0, "Europe/London"), [URN], people=people)
    assert a.rota.on_duty(utc("2026-03-27T08:30")) == []  # Friday 08:30 GMT
    assert a.rota.on_duty(utc("2026-03-30T08:30")) == ["ann"]  # Monday 09:30 BST
    assert a.rota.on_duty(utc("2026-10-26T08:30")) == []  # Monday 08:30 GMT


def test_a_downtime_silences_routine_alerts_not_the_defibrillator(tmp_path):
    saturday = at("2026-10-24T12:00")
    clock = ManualClock(saturday, "Europe/London")
    a = alerting(tmp_path, clock, [URN, DEFIB])
    a.engine.take([power("urn", 2500, saturday), power("defib-socket", 0, saturday)])
    a.engine.tick()
    assert sorted(notices(a)) == [("OK -> ALERT", "ann", "muted"),
                                  ("OK -> ALERT", "ann", "pending")]
    muted = a.journal.conn.execute("SELECT monitor, error FROM notifications "
                                   "WHERE state = 'muted'").fetchall()
    assert muted == [("urn-left-on", "silenced by downtime weekend")]
    # The weekend ends on Monday at 09:00 (GMT, after the clocks went back): the urn is
    # still on, and the weekend downtime says so then, once.
    clock.set_now(at("2026-10-26T08:59"))
    a.engine.tick()
    assert len(notices(a)) == 2
    clock.set_now(at("2026-10-26T09:00"))
    a.engine.take([power("urn", 2500, clock.now())])
    a.engine.tick()
    a.engine.tick()
    assert notices(a)[2:] == [("ALERT downtime ended", "ann", "pending")]


def test_escalation_tells_further_people_until_someone_acknowledges(tmp_path):
    tuesday = at("2026-11-03T11:00")
    clock = ManualClock(tuesday, "Europe/London")
    monitor = {**URN, "escalate": [{"after": "15m", "notify": ["bob"]},
                                   {"after": "30m", "notify": ["everyone"]}]}
    a = alerting(tmp_path, clock, [monitor], downtimes=[])
    a.engine.take([power("urn", 2500, tuesday)])
    clock.advance(14 * 60)
    a.engine.tick()
    assert notices(a) == [("OK -> ALERT", "ann", "pending")]
    clock.advance(60)
    a.engine.tick()
    assert notices(a)[1:] == [("ALERT escalation 1", "bob", "pending")]
    [alert] = a.journal.alerts()
    a.journal.acknowledge(alert.id, "bob", clock.now(), "cli")
    clock.advance(3600)
    a.engine.tick()
    assert len(notices(a)) == 2
    body = a.journal.conn.execute("SELECT title FROM notifications WHERE person = 'bob'"
                                  ).fetchone()[0]
    assert "escalation 1" in body


def test_the_defibrillator_reaches_everyone_in_a_downtime_with_nobody_on_duty(tmp_path):
    sunday_night = at("2026-03-29T23:30")  # the weekend downtime; the clocks went forward
    clock = ManualClock(sunday_night, "Europe/London")
    people = [{"name": "ann", "channels": ["json://127.0.0.1:9/ann"],
               "available": ["Mon-Fri 09:00-17:00"]},
              {"name": "bob", "channels": ["json://127.0.0.1:9/bob"],
               "available": ["Sat 10:00-12:00"]}]
    a = alerting(tmp_path, clock, [{**DEFIB, "notify": ["on_duty"]},
                                   {**URN, "notify": ["on_duty"]}], people=people)
    assert a.rota.on_duty(sunday_night) == []
    assert a.downtimes.silencing("urn-left-on", [], sunday_night) is not None
    a.engine.take([power("defib-socket", 0, sunday_night), power("urn", 2500, sunday_night)])
    told = a.journal.conn.execute("SELECT monitor, person, state FROM notifications "
                                  "ORDER BY monitor, person").fetchall()
    assert told == [("defib-power", "ann", "pending"), ("defib-power", "bob", "pending"),
                    ("urn-left-on", "", "nobody")]
