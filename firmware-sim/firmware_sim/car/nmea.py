"""NMEA 0183 sentences as a GPS receiver writes them: RMC and GGA, with and without a fix.

`$<talker><type>,<fields>*<checksum>\\r\\n`, the checksum being the XOR of every
byte between `$` and `*` as two upper-case hex digits. Positions are ddmm.mmmm /
dddmm.mmmm with N/S, E/W; times hhmmss.ss UTC; dates ddmmyy. Without a fix,
receivers still write both sentences, with the position fields empty, RMC
status V (void) and mode N, GGA quality 0, 00 satellites and HDOP 99.99 (as
u-blox receivers do); the time is there because the receiver's clock runs on
its backup battery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce

KNOTS_PER_KMH = 1 / 1.852


@dataclass(frozen=True)
class Fix:
    """A position solution."""

    lat: float
    lon: float
    alt: float          # metres above mean sea level
    speed_kmh: float
    course: float       # degrees from true north
    satellites: int
    hdop: float
    geoid_sep: float    # geoid above the WGS84 ellipsoid, metres (about 47 m in Yorkshire)


def checksum(body: str) -> str:
    return f"{reduce(lambda acc, ch: acc ^ ch, body.encode('ascii'), 0):02X}"


def sentence(body: str) -> bytes:
    """`body` is everything between `$` and `*`."""
    return f"${body}*{checksum(body)}\r\n".encode("ascii")


def _angle(value: float, degree_digits: int) -> str:
    # Whole ten-thousandths of a minute, so 59.99999' rounds up into the next degree.
    units = round(abs(value) * 60 * 10_000)
    degrees, rest = divmod(units, 60 * 10_000)
    minutes, fraction = divmod(rest, 10_000)
    return f"{degrees:0{degree_digits}d}{minutes:02d}.{fraction:04d}"


def latitude(lat: float) -> tuple[str, str]:
    return _angle(lat, 2), "N" if lat >= 0 else "S"


def longitude(lon: float) -> tuple[str, str]:
    return _angle(lon, 3), "E" if lon >= 0 else "W"


def _clock(ts: float) -> tuple[str, str]:
    centis = round(ts * 100)
    t = datetime.fromtimestamp(centis // 100, UTC)
    return f"{t:%H%M%S}.{centis % 100:02d}", f"{t:%d%m%y}"


def rmc(talker: str, ts: float, fix: Fix | None) -> bytes:
    """Recommended minimum data: time, status, position, speed (knots), course, date."""
    time, date = _clock(ts)
    if fix is None:
        return sentence(f"{talker}RMC,{time},V,,,,,,,{date},,,N")
    lat, ns = latitude(fix.lat)
    lon, ew = longitude(fix.lon)
    knots = fix.speed_kmh * KNOTS_PER_KMH
    return sentence(f"{talker}RMC,{time},A,{lat},{ns},{lon},{ew},{knots:.3f},{fix.course:.2f},"
                    f"{date},,,A")


def gga(talker: str, ts: float, fix: Fix | None) -> bytes:
    """Fix data: time, position, quality, satellites used, HDOP, altitude, geoid separation."""
    time, _ = _clock(ts)
    if fix is None:
        return sentence(f"{talker}GGA,{time},,,,,0,00,99.99,,,,,,")
    lat, ns = latitude(fix.lat)
    lon, ew = longitude(fix.lon)
    return sentence(f"{talker}GGA,{time},{lat},{ns},{lon},{ew},1,{fix.satellites:02d},"
                    f"{fix.hdop:.2f},{fix.alt:.1f},M,{fix.geoid_sep:.1f},M,,")
