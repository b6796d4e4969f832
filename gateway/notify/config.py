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

    logging.getLogger("apprise").setLevel(logging.CRITICAL + 1)  # it would log the URL
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

    def check(self) -> Iterator[tuple[str, str]]:
        yield from positive("retry_min", self.retry_min, " seconds")
        if self.retry_max < self.retry_min:
            yield "retry_max", "must be at least retry_min"
