"""Who is told, how and when (`people:`), and the alert channel's delivery settings.

Part of the config layer (tests/test_import_layers.py): the root config
composes it; it imports nothing of the sending machinery.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.config.schema import name_problems, positive
from gateway.config.validate import Duration, Secret, doc
from gateway.config.weekly import window_problems


def _unreadable_channels(urls: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """Channels Apprise cannot read, named by index and scheme only (URLs hold secrets)."""
    if not urls:
        return
    import logging

    import apprise

    logging.getLogger("apprise").propagate = False  # it would log the URL
    for i, url in enumerate(urls):
        if not apprise.Apprise().add(str(url)):
            scheme = str(url).partition("://")[0] if "://" in url else ""
            what = f"this {scheme}:// URL" if scheme else "this: it has no scheme://"
            yield (f"channels[{i}]",
                   f"Apprise cannot read {what}: see https://github.com/caronc/apprise/wiki "
                   "for the service's URL form (the URL itself is not shown: it may hold a "
                   "password or token)")


@dataclass(frozen=True)
class AwayPeriod:
    start: str = field(default="", metadata=doc("from, e.g. 2026-12-24 or 2026-12-24T18:00",
                                                 required=True))
    end: str = field(default="", metadata=doc("until (not included), same form",
                                              required=True))

    def check(self) -> Iterator[tuple[str, str]]:
        for key in ("start", "end"):
            try:
                datetime.fromisoformat(getattr(self, key))
            except ValueError:
                yield key, f"must be a date or date and time, e.g. 2026-12-24T18:00, " \
                           f"got {getattr(self, key)!r}"


@dataclass(frozen=True)
class Person:
    name: str = field(metadata=doc("how monitors' notify: and acknowledgements name them"))
    channels: tuple[Secret, ...] = field(
        default=(),
        metadata=doc("Apprise URLs, tried in order until one works (mailto://, tgram://, "
                     "ntfy://, json:// ...); they hold tokens: kept out of logs",
                     secret=True))
    timezone: str = field(default="", metadata=doc("for available: and away:; empty: the "
                                                   "gateway's"))
    available: tuple[str, ...] = field(
        default=("always",),
        metadata=doc("weekly windows they are on duty, e.g. 'Mon-Fri 09:00-17:00'"))
    away: tuple[AwayPeriod, ...] = field(default=(), metadata=doc("one-off absences"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from name_problems("name", self.name, "person name")
        if not self.channels:
            yield "channels", "give at least one Apprise URL (e.g. mailto://user:pw@host)"
        yield from _unreadable_channels(self.channels)
        if self.timezone:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                yield "timezone", f"unknown time zone {self.timezone!r} (e.g. Europe/London)"
        yield from window_problems("available", self.available)


@dataclass(frozen=True)
class AlertingSection:
    """How notifications are delivered."""

    retry_min: float = field(default=5.0, metadata=doc("first retry of a failed send, s"))
    retry_max: float = field(default=600.0, metadata=doc("longest wait between retries, s"))
    give_up_after: Duration = field(
        default=Duration(86400),
        metadata=doc("a notification not delivered in this long is marked failed (each "
                     "retry tries every channel of the person, in order)"))

    topic_prefix: str = field(
        default="",
        metadata=doc("the open alerts are published retained under <prefix>/alerts, and "
                     "<prefix>/alerts/ack takes acknowledgements; empty: gateway/<name>"))
    board: bool = field(default=True,
                        metadata=doc("publish the open alerts on the local broker (a hall "
                                     "display's fallback when no channel reaches anyone)"))
    lamp_pin: int | None = field(
        default=None,
        metadata=doc("GPIO (BCM) pin of a lamp lit while an alert is open, blinking while "
                     "a notice could not be delivered"))
    buzzer_pin: int | None = field(
        default=None,
        metadata=doc("GPIO (BCM) pin of a buzzer that beeps while a safety-critical alert "
                     "is open and unacknowledged"))
    ack_token: Secret | None = field(
        default=None,
        metadata=doc("bearer token for POST /alerts/<id>/ack on the status port; unset: that "
                     "endpoint is off", secret=True))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from positive("retry_min", self.retry_min, " seconds")
        for key in ("lamp_pin", "buzzer_pin"):
            pin = getattr(self, key)
            if pin is not None and not 0 <= pin <= 27:
                yield key, f"must be a BCM GPIO number 0-27, got {pin}"
        if self.lamp_pin is not None and self.lamp_pin == self.buzzer_pin:
            yield "buzzer_pin", "must differ from lamp_pin"
        if self.ack_token is not None and len(self.ack_token) < 16:
            yield "ack_token", "must be at least 16 characters (e.g. from openssl rand -hex 16)"
        if self.retry_max < self.retry_min:
            yield "retry_max", "must be at least retry_min"


@dataclass(frozen=True)
class DowntimeConfig:
    """A recurring quiet time: notifications of the monitors it covers are recorded, not
    sent (safety-critical monitors are never silenced)."""

    name: str = field(metadata=doc("shown in the record of what was silenced"))
    windows: tuple[str, ...] = field(
        default=(), metadata=doc("weekly windows, e.g. 'Mon-Fri 19:00-09:00', 'Sat,Sun'"))
    rrule: str = field(
        default="",
        metadata=doc("or an iCalendar RRULE as Datadog's downtimes take, e.g. "
                     "FREQ=WEEKLY;BYDAY=SA,SU, with start and duration"))
    start: str = field(default="", metadata=doc("with rrule: first start, e.g. "
                                                "2026-01-03T19:00 (local time)"))
    duration: Duration = field(
        default=Duration(3600),
        metadata=doc("with rrule: how long each lasts, on the wall clock (19:00 + 14h ends "
                     "at 09:00 also on the nights the clocks change)"))
    timezone: str = field(default="", metadata=doc("empty: the gateway's"))
    monitors: tuple[str, ...] = field(default=(), metadata=doc("monitors it covers; none: all"))
    tags: tuple[str, ...] = field(
        default=(), metadata=doc("only groups with these tags, e.g. room:kitchen"))
    notify_end: bool = field(
        default=False, metadata=doc("at its end, tell them of monitors still alerting"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from name_problems("name", self.name, "downtime name")
        if bool(self.windows) == bool(self.rrule):
            yield "windows", "give windows or an rrule (with start and duration), not both"
        yield from window_problems("windows", self.windows)
        if self.rrule:
            try:
                start = datetime.fromisoformat(self.start)
            except ValueError:
                yield "start", f"must be a date and time such as 2026-01-05T19:00, got " \
                               f"{self.start!r}"
                return
            from dateutil.rrule import rrulestr

            try:
                rrulestr(self.rrule, dtstart=start)
            except (ValueError, TypeError) as exc:
                yield "rrule", f"not a valid RRULE ({exc}); e.g. FREQ=WEEKLY;BYDAY=MO,TU"
            yield from positive("duration", self.duration, " seconds")
        if self.timezone:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                yield "timezone", f"unknown time zone {self.timezone!r} (e.g. Europe/London)"
        for i, tag in enumerate(self.tags):
            if ":" not in tag:
                yield f"tags[{i}]", f"must be key:value, e.g. room:kitchen, got {tag!r}"
