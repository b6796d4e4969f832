"""Payload forms of lines from serial devices, read into the dict a profile's fields
address by name: NMEA 0183 sentences (GPS receivers, through pynmea2) and
comma-separated values (home-made sensor nodes).

A line that cannot be read raises `Unreadable` with the reason it is counted under.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pynmea2


class Unreadable(ValueError):
    def __init__(self, reason: str, why: str) -> None:
        super().__init__(why)
        self.reason = reason
        self.why = why


def _number(text: Any) -> Any:
    """NMEA fields are text: numbers where they read as one, else the text ('' stays)."""
    if isinstance(text, str) and text:
        try:
            return float(text)
        except ValueError:
            return text
    return text


def nmea_body(text: str) -> dict[str, Any]:
    """One sentence: every field by pynmea2's name (numbers as numbers), `type` (RMC,
    GGA ...), `talker` (GP, GN ...), signed decimal `latitude`/`longitude` when the
    sentence has a position, and `time` (UTC epoch seconds) when it carries a date
    and time (RMC with a valid fix)."""
    try:
        msg = pynmea2.parse(text.strip())
    except pynmea2.ChecksumError as exc:
        raise Unreadable("bad_checksum", f"NMEA checksum does not match ({exc.args[0]})") from None
    except (pynmea2.ParseError, ValueError, TypeError) as exc:
        raise Unreadable("bad_nmea", f"not an NMEA sentence ({exc.__class__.__name__})") from None
    body: dict[str, Any] = {"type": getattr(msg, "sentence_type", ""),
                            "talker": getattr(msg, "talker", "")}
    for spec in msg.fields:
        name = spec[1]
        try:
            value = getattr(msg, name)
        except (ValueError, TypeError):
            continue  # a field its type could not read: left out, not guessed
        if value is not None and value != "":  # an empty field says nothing
            body[name] = _number(value)
    if getattr(msg, "lat", "") and getattr(msg, "lon", ""):
        # pynmea2 gives 0.0 for an empty position; only a present one is a position.
        try:
            body["latitude"], body["longitude"] = float(msg.latitude), float(msg.longitude)
        except (ValueError, TypeError):
            pass
    when = None
    if getattr(msg, "status", "A") == "A":
        try:
            when = getattr(msg, "datetime", None)
        except (ValueError, TypeError):
            when = None
    if isinstance(when, datetime):
        body["time"] = when.replace(tzinfo=when.tzinfo or UTC).timestamp()
    for key in ("timestamp", "datestamp", "datetime"):
        body.pop(key, None)  # datetime objects: `time` says it as a number
    return body


def csv_body(text: str) -> dict[str, Any]:
    """Comma-separated values by column position, "1" first; numbers as numbers."""
    return {str(i): _number(cell.strip()) for i, cell in enumerate(text.strip().split(","), 1)}
