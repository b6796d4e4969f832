"""Reading the hall's booking calendar (iCalendar, RFC 5545) into booked periods.

icalendar parses the file; recurring-ical-events expands recurring bookings
(RRULE, RDATE) and their exceptions (EXDATE, a moved or cancelled occurrence)
into the occurrences of a span. A booking given in local time without a zone,
or as a whole day, is read in the gateway's time zone. A pure function of the
text: the config check uses it on a file, the running gateway on each refresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo


@dataclass(frozen=True)
class Booking:
    start: float  # UTC seconds
    end: float
    summary: str


class CalendarError(ValueError):
    """Not a calendar this can read, with why."""


def _moment(value: object, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime.combine(value, time(0), zone)
    raise CalendarError(f"a start or end that is not a date or time: {value!r}")


def bookings(text: str | bytes, zone: tzinfo, start: float, end: float) -> list[Booking]:
    """The bookings that overlap [start, end), sorted by start."""
    import icalendar
    import recurring_ical_events

    try:
        calendar = icalendar.Calendar.from_ical(text)
    except ValueError as exc:
        raise CalendarError(f"not an iCalendar file: {exc}") from None
    if calendar.name != "VCALENDAR":
        raise CalendarError(f"not an iCalendar file: it holds a {calendar.name}, "
                            "not a VCALENDAR")
    span = (datetime.fromtimestamp(start, zone), datetime.fromtimestamp(end, zone))
    out = []
    try:
        events = recurring_ical_events.of(calendar).between(*span)
    except Exception as exc:  # noqa: BLE001 - the library's errors name the bad rule
        raise CalendarError(f"cannot expand its recurring events: {exc}") from None
    for event in events:
        first = _moment(event.get("DTSTART").dt, zone)
        if event.get("DTEND") is not None:
            last = _moment(event.get("DTEND").dt, zone)
        elif event.get("DURATION") is not None:
            last = first + event.get("DURATION").dt
        else:  # RFC 5545: a date lasts the day, a date-time no time at all
            last = first + (timedelta(days=1) if not isinstance(event.get("DTSTART").dt,
                                                                 datetime) else timedelta(0))
        out.append(Booking(first.timestamp(), last.timestamp(), str(event.get("SUMMARY", ""))))
    return sorted(out, key=lambda b: b.start)
