"""When a payload says its values were measured: read that time, and decide whether to believe it.

A profile names where a message carries its time (`time: Time` for Tasmota,
`time: params.ts` for Shelly notifications). The value may be ISO 8601 text or
a Unix epoch number:

- Text with an offset or `Z` ("2026-11-20T10:15:00+01:00", Zigbee2MQTT's
  ISO_8601) is exact. Text without one ("2026-11-20T10:15:00", Tasmota's
  default) is the device's local time, in the zone its clock is set to (the
  device's `timezone`, else `gateway.timezone`).
- A number is epoch seconds (Shelly's `ts`, Tasmota's `Time 3`), or epoch
  milliseconds when it is too large to be seconds (Zigbee2MQTT's `epoch`):
  1e11 seconds would be the year 5138, 1e11 milliseconds is 1973.

A device's clock is believed only within a window around the moment the
gateway received the message: at most `max_ahead` in the future (clocks drift a
little; a message cannot come from later than its arrival) and at most
`max_behind` in the past (the broker keeps a session's messages through an
outage, up to `mqtt.session_expiry`; a device that never got the time says
1970 or 2000). Outside it, the reading gets its receive time and the caller
counts and logs why.

Local times repeat or do not exist where daylight saving changes. Of the
instants a local time can mean (zoneinfo's `fold` 0 and 1), the latest one not
beyond `received + max_ahead` is taken: a reading cannot come from after it
arrived, and of two that could, live traffic is the later one. So a message
sent live during the repeated hour gets the right instant; one queued during
the first pass of that hour and delivered after it is read as the second pass
(an hour late). In a gap (a time the zone skips) the same rule picks the
offset that matches the arrival: a device that changed to summer time early
or late still lands where it was received.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from gateway.config.schema import Config
from gateway.config.validate import duration_words

#: reasons a device's time was not believed (stable: they are metric labels)
AHEAD = "ahead"
BEHIND = "behind"
UNREADABLE = "unreadable"

#: an epoch number at least this large is milliseconds, not seconds
_MILLISECONDS_FROM = 1e11
_EPOCH = datetime(1970, 1, 1)
#: no zone changes its offset twice within this span, nor by more than it
_NEAR = timedelta(hours=3)
_UTC_ZONES = ("UTC", "Etc/UTC", "Etc/GMT", "GMT", "Z")


@dataclass(frozen=True)
class TimePolicy:
    """Whether device clocks are read, how far they are believed, and the default zone."""

    enabled: bool = True
    max_ahead: float = 120.0
    max_behind: float = 8 * 86400.0
    timezone: str = "UTC"

    @classmethod
    def from_config(cls, config: Config) -> TimePolicy:
        """The policy a `Config` describes (gateway.device_time, gateway.timezone)."""
        dt = config.gateway.device_time
        behind = dt.max_behind if dt.max_behind is not None \
            else config.mqtt.session_expiry + 86400.0
        return cls(dt.enabled, float(dt.max_ahead), float(behind), config.gateway.timezone)


class Stamp(NamedTuple):
    """The time a message's readings get, and why it is not the device's own when it is not.

    (A named tuple: made for every message, and a frozen dataclass costs 0.7 us to make.)
    """

    ts: float
    from_device: bool
    rejected: str = ""  # AHEAD, BEHIND or UNREADABLE when the device's time was not believed
    detail: str = ""


def zone(name: str) -> tzinfo:
    """The tzinfo for an IANA name; UTC itself without zoneinfo's lookups."""
    return UTC if name in _UTC_ZONES else ZoneInfo(name)


class DeviceClock:
    """Where one kind of message carries its time, for one device, and how far to believe it."""

    __slots__ = ("ahead", "behind", "keys", "path", "tz")

    def __init__(self, path: str, tz: tzinfo, ahead: float, behind: float) -> None:
        self.path = path
        self.keys = tuple(path.split("."))
        self.tz = tz
        self.ahead = ahead
        self.behind = behind

    def stamp(self, body: Any, received: float) -> Stamp | None:
        """The payload's own time, judged against `received`; None when it carries none."""
        value = body
        for key in self.keys:
            if type(value) is not dict:
                return None
            value = value.get(key)
            if value is None:
                return None
        ts = epoch_seconds(value, self.tz, received + self.ahead)
        if ts is None:
            return Stamp(received, False, UNREADABLE,
                         f"{self.path} {_excerpt(value)} is not a time (ISO 8601 text or "
                         "epoch seconds)")
        offset = ts - received
        if offset > self.ahead:
            return Stamp(received, False, AHEAD,
                         f"its clock is {duration_words(offset)} ahead ({self.path} "
                         f"{_excerpt(value)})")
        if -offset > self.behind:
            return Stamp(received, False, BEHIND,
                         f"its clock is {duration_words(-offset)} behind ({self.path} "
                         f"{_excerpt(value)})")
        return Stamp(ts, True)


def epoch_seconds(value: Any, tz: tzinfo, latest: float) -> float | None:
    """UTC seconds for a payload time; None when `value` is not one.

    `tz` is the zone of text without an offset; `latest` decides between the two
    instants a local time can mean where daylight saving changes (module docstring).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if "-" in text[1:] or ":" in text:  # a date, the common case: no float() attempt
            return _from_text(text, tz, latest)
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number):
        return None
    return number / 1000.0 if abs(number) >= _MILLISECONDS_FROM else number


def _from_text(text: str, tz: tzinfo, latest: float) -> float | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    try:
        if moment.tzinfo is not None:
            return moment.timestamp()
        # Arithmetic rather than replace(tzinfo=...), which costs 0.8 us a call: this
        # runs for every message of every Tasmota.
        local = (moment - _EPOCH).total_seconds()
        if tz is UTC:
            return local
        offset = tz.utcoffset(moment)
        if offset is None:
            return local
        if tz.utcoffset(moment - _NEAR) == offset == tz.utcoffset(moment + _NEAR):
            return local - offset.total_seconds()  # no daylight-saving change near
        first = moment.replace(tzinfo=tz, fold=0).timestamp()
        second = moment.replace(tzinfo=tz, fold=1).timestamp()
    except (OverflowError, OSError, ValueError):  # year 1 or 9999 near the edge of the range
        return None
    if first == second:
        return first
    early, late = min(first, second), max(first, second)
    return late if late <= latest else early



def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
