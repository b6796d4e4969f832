"""The hall's bookings, kept current: read from a file or URL every `bookings.refresh`,
in a thread of its own (a slow URL never holds up the monitors).

The last good copy is kept in the data folder (`bookings.ics`): when the URL
cannot be reached or gives something unreadable, the bookings already known
stay, and a restart without the internet starts from that copy. With no
calendar at all (never read, no copy), nothing counts as booked: a monitor
that watches an empty hall then alerts rather than stays silent.
"""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path

from gateway.clock import Clock
from gateway.monitors.calendar import Booking, CalendarError, bookings
from gateway.monitors.config import BookingRule, BookingsSection
from gateway.worker import Worker

log = logging.getLogger("gateway.monitors")

COPY = "bookings.ics"
#: bookings are expanded for this span around now, and again at each refresh
BEHIND, AHEAD = 2 * 86400.0, 14 * 86400.0


class Bookings(Worker):
    thread_name = "bookings"
    what = "the bookings reader"

    def __init__(self, section: BookingsSection, config_dir: Path, data_dir: Path,
                 clock: Clock) -> None:
        super().__init__()
        self.section = section
        self.clock = clock
        where = section.calendar
        self.url = where if where.startswith(("http://", "https://")) else None
        self.path = None if self.url else (config_dir / where).expanduser()
        self.copy = data_dir / COPY
        self.known: list[Booking] = []
        self.read_at: float | None = None
        self.problem = ""

    def _fetch(self) -> bytes:
        if self.url is not None:
            with urllib.request.urlopen(self.url, timeout=20) as reply:
                return bytes(reply.read())
        assert self.path is not None
        return self.path.read_bytes()

    def refresh(self) -> bool:
        """Read the calendar again; keep what is known when it cannot be. True: read."""
        now = self.clock.now()
        where = self.url or str(self.path)
        try:
            text = self._fetch()
            found = bookings(text, self.clock.zone, now - BEHIND, now + AHEAD)
        except (OSError, CalendarError, ValueError) as exc:
            self.problem = f"cannot read the bookings calendar {where}: {exc}"
            if self.read_at is None and self.copy.is_file():
                try:
                    self.known = bookings(self.copy.read_bytes(), self.clock.zone,
                                          now - BEHIND, now + AHEAD)
                    self.problem += " (using the last good copy)"
                except (OSError, CalendarError, ValueError):
                    pass
            log.warning("%s; the bookings known stay as they are", self.problem)
            return False
        self.known, self.read_at, self.problem = found, now, ""
        tmp = self.copy.with_suffix(".tmp")
        try:
            tmp.write_bytes(text)
            tmp.replace(self.copy)
        except OSError as exc:
            log.warning("cannot keep a copy of the bookings calendar in %s: %s", self.copy, exc)
        return True

    def booked(self, ts: float, rule: BookingRule) -> bool:
        """Whether a booking covers `ts`, `before` its start to `after` its end."""
        return any(b.start - rule.before <= ts < b.end + rule.after for b in self.known)

    def work(self) -> None:
        while True:
            self.refresh()
            if self._stop.wait(self.section.refresh):
                return
