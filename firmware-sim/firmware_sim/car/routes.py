"""The roads the simulated van drives: named routes as waypoints with a speed per leg.

The built-in route runs from Kilnwick, on the edge of the Yorkshire Wolds, south
down the lane to Lockington, east to the A164, then north through Beswick, Watton
and Hutton Cranswick into Driffield: about 16.7 km of lanes, villages and main
road. The points follow the real roads closely enough to look right on a map;
they are not a survey. Speeds are what a careful driver does on each leg (the
30 mph villages at 48 km/h, the 60 mph A164 at 96 km/h, narrow lanes slower).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from firmware_sim.devices.base import ScenarioError

EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True)
class Waypoint:
    """A point on a route; `limit` (km/h) holds on the leg that leaves it."""

    lat: float
    lon: float
    alt: float  # metres above mean sea level
    limit: float


def _route(points: Sequence[tuple[float, float, float, float]]) -> tuple[Waypoint, ...]:
    return tuple(Waypoint(*p) for p in points)


# (lat, lon, altitude m, km/h on the leg that starts here)
KILNWICK_DRIFFIELD = _route([
    (53.9489, -0.4901, 27.0, 48.0),   # Kilnwick, by the church
    (53.9440, -0.4915, 24.0, 72.0),   # lane south
    (53.9350, -0.4890, 19.0, 72.0),
    (53.9262, -0.4872, 15.0, 72.0),
    (53.9170, -0.4850, 11.0, 48.0),   # into Lockington
    (53.9095, -0.4818, 9.0, 48.0),
    (53.9102, -0.4720, 8.0, 72.0),    # lane east to the A164
    (53.9118, -0.4600, 9.0, 96.0),    # A164 north
    (53.9165, -0.4540, 11.0, 48.0),   # Beswick
    (53.9245, -0.4505, 12.0, 96.0),
    (53.9320, -0.4508, 13.0, 64.0),   # Watton, 40 mph
    (53.9392, -0.4512, 14.0, 48.0),
    (53.9418, -0.4468, 14.0, 96.0),
    (53.9505, -0.4425, 15.0, 64.0),   # Hutton Cranswick, 40 mph
    (53.9560, -0.4400, 16.0, 96.0),
    (53.9628, -0.4385, 18.0, 96.0),
    (53.9745, -0.4372, 20.0, 96.0),
    (53.9852, -0.4381, 22.0, 64.0),   # Driffield outskirts
    (53.9950, -0.4402, 24.0, 48.0),
    (54.0021, -0.4418, 22.0, 32.0),   # town centre
    (54.0058, -0.4395, 21.0, 0.0),    # Driffield, Market Place
])


def reverse(route: Sequence[Waypoint]) -> tuple[Waypoint, ...]:
    """The same roads the other way: each leg keeps its speed."""
    n = len(route)
    # Reversed, point i is the old point n-1-i and its leg is the old leg n-2-i.
    return tuple(Waypoint(w.lat, w.lon, w.alt, route[n - 2 - i].limit if i < n - 1 else 0.0)
                 for i, w in enumerate(reversed(route)))


ROUTES: dict[str, tuple[Waypoint, ...]] = {
    "kilnwick-driffield": KILNWICK_DRIFFIELD,
    "driffield-kilnwick": reverse(KILNWICK_DRIFFIELD),
}


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial course from the first point to the second, degrees clockwise from true north."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def length_m(route: Sequence[Waypoint]) -> float:
    return sum(distance_m(a.lat, a.lon, b.lat, b.lon) for a, b in pairwise(route))


def parse_route(value: Any, alt: float, where: str) -> tuple[Waypoint, ...]:
    """A route from a scenario: a name in ROUTES, or a list of [lat, lon] or [lat, lon, km/h]."""
    if isinstance(value, str):
        if value not in ROUTES:
            raise ScenarioError(f"{where}: no route {value!r}; known: {', '.join(sorted(ROUTES))}"
                                " (or give a list of [lat, lon] points)")
        return ROUTES[value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ScenarioError(f"{where}: a route is a name or a list of [lat, lon] points")
    points: list[Waypoint] = []
    for i, p in enumerate(value):
        if (not isinstance(p, (list, tuple)) or len(p) not in (2, 3)
                or not all(isinstance(x, (int, float)) for x in p)):
            raise ScenarioError(f"{where}[{i}]: {p!r} is not [lat, lon] or [lat, lon, km/h]")
        lat, lon = float(p[0]), float(p[1])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ScenarioError(f"{where}[{i}]: {lat}, {lon} is not a latitude, longitude")
        points.append(Waypoint(lat, lon, alt, float(p[2]) if len(p) == 3 else 64.0))
    return tuple(points)
