"""The hall's bookings gate the monitors: "heating on while no booking started in the last
30 minutes or starts in the next 60" alerts only then, recurring bookings and their
exceptions included; an unreachable calendar URL keeps the bookings known, and a
restart without the internet starts from the last good copy.

Real icalendar and recurring-ical-events on a calendar as a booking system exports
it; the calendar served over HTTP by a local server for the URL case.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from programs.ports import free_port

from gateway.clock import ManualClock
from gateway.config.load import parse_config
from gateway.config.validate import ConfigError
from gateway.health.stats import Stats
from gateway.model import Reading
from gateway.monitors.bookings import Bookings
from gateway.monitors.config import BookingRule, BookingsSection
from gateway.notify.alerting import Alerting

LONDON = ZoneInfo("Europe/London")

# Yoga on Tuesdays 18:00-20:00; 10 November cancelled; 17 November moved to 19:00-21:00.
YOGA = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Village Hall//Bookings//EN
BEGIN:VEVENT
UID:yoga-tuesdays@hall.example
DTSTAMP:20261001T120000Z
DTSTART;TZID=Europe/London:20261103T180000
DTEND;TZID=Europe/London:20261103T200000
RRULE:FREQ=WEEKLY;BYDAY=TU
EXDATE;TZID=Europe/London:20261110T180000
SUMMARY:Yoga
END:VEVENT
BEGIN:VEVENT
UID:yoga-tuesdays@hall.example
DTSTAMP:20261001T120000Z
RECURRENCE-ID;TZID=Europe/London:20261117T180000
DTSTART;TZID=Europe/London:20261117T190000
DTEND;TZID=Europe/London:20261117T210000
SUMMARY:Yoga (moved)
END:VEVENT
END:VCALENDAR
"""

HEATING_LEFT_ON = {
    "name": "heating-left-on", "type": "state", "metric": "switch.boiler_relay", "equals": 1,
    "duration": "0s", "devices": ["heating"],
    "booking": {"only": "unbooked", "before": "60m", "after": "30m"},
    "message": "{{#is_alert}}The heating is on and nobody has booked the hall.{{/is_alert}}"}


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON).timestamp()


def config_for(folder: Path, calendar: str) -> dict:
    return {"gateway": {"name": "hall", "timezone": "Europe/London"},
            "devices": [{"id": "heating", "profile": "esphome", "node": "heating"}],
            "people": [{"name": "ann", "channels": ["json://127.0.0.1:9/ann"]}],
            "monitors": [HEATING_LEFT_ON], "bookings": {"calendar": calendar}}


@pytest.mark.parametrize(("moment", "alerts"), [
    ("2026-11-03T16:59", True),  # Tuesday, more than an hour before yoga
    ("2026-11-03T17:30", False),  # warming up for yoga
    ("2026-11-03T20:20", False),  # yoga just ended
    ("2026-11-03T20:31", True),  # left on after the last booking
    ("2026-11-10T18:30", True),  # yoga cancelled that week
    ("2026-11-17T18:30", False),  # yoga moved to 19:00
    ("2026-11-17T21:15", False),
    ("2026-11-17T21:31", True),
])
def test_a_booking_gates_the_heating_monitor(tmp_path, moment, alerts):
    (tmp_path / "bookings.ics").write_text(YOGA)
    config = parse_config(json.dumps(config_for(tmp_path, "bookings.ics")),
                          str(tmp_path / "gateway.yaml"))
    clock = ManualClock(at(moment), "Europe/London")
    a = Alerting(config, tmp_path / "data", clock, Stats(), {}, tmp_path)
    assert a.bookings is not None and a.bookings.refresh()
    a.engine.take([Reading("switch.boiler_relay", 1.0, clock.now(), "gauge", "",
                           {"device": "heating"})])
    a.engine.tick()
    told = a.journal.conn.execute("SELECT body FROM notifications").fetchall()
    assert bool(told) == alerts, told
    if alerts:
        assert told == [("The heating is on and nobody has booked the hall.",)]


class Calendar:
    """The booking system's calendar feed, served over HTTP; it can go away."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.port = free_port()
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = feed.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hall.ics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_unreachable_calendar_keeps_what_was_known_and_a_restart_uses_the_copy(tmp_path):
    feed = Calendar(YOGA)
    clock = ManualClock(at("2026-11-03T12:00"), "Europe/London")
    section = BookingsSection(calendar=feed.url)
    data = tmp_path / "data"
    data.mkdir()
    rule = BookingRule()
    first = Bookings(section, tmp_path, data, clock)
    assert first.refresh()
    assert first.booked(at("2026-11-03T19:00"), rule)
    feed.text = "this is not a calendar"
    assert not first.refresh()
    assert "not an iCalendar file" in first.problem
    assert first.booked(at("2026-11-03T19:00"), rule)  # what was known stays
    feed.close()
    assert not first.refresh()
    assert "cannot read the bookings calendar http://127.0.0.1" in first.problem

    again = Bookings(section, tmp_path, data, clock)  # a restart, the internet still down
    assert not again.refresh()
    assert "using the last good copy" in again.problem
    assert again.booked(at("2026-11-03T19:00"), rule)
    assert not again.booked(at("2026-11-10T19:00"), rule)


@pytest.mark.parametrize(("content", "says"), [
    (None, "cannot read"),
    ("BEGIN:VCARD\nEND:VCARD\n", "not an iCalendar file"),
])
def test_an_unreadable_calendar_file_is_named_by_the_check(tmp_path, content, says):
    if content is not None:
        (tmp_path / "bookings.ics").write_text(content)
    with pytest.raises(ConfigError) as caught:
        parse_config(json.dumps(config_for(tmp_path, "bookings.ics")),
                     str(tmp_path / "gateway.yaml"))
    assert "bookings.calendar" in str(caught.value) and says in str(caught.value)
