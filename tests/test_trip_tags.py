"""Trips: the readings between the ignition's 1 and its 0 carry trip:<local start time>,
the ones before and after none; a gateway restarted mid-trip carries on with the same
trip; readings of a device the trip does not cover are left alone."""

from __future__ import annotations

from gateway.clock import ManualClock
from gateway.ingest.trips import Trips
from gateway.model import Reading

START = 1_796_205_600.0  # 2026-12-02 10:00 UTC


def reading(device: str, metric: str, value: float, ts: float) -> Reading:
    return Reading(metric, value, ts, tags={"device": device, "gateway": "van-1"})


def trip_of(trips: Trips, *readings: Reading) -> list[str | None]:
    batch = list(readings)
    trips.tag(batch)
    return [r.tags.get("trip") for r in batch]


def test_a_trip_from_ignition_on_to_off_survives_a_restart(tmp_path):
    clock = ManualClock(START, "Europe/London")
    trips = Trips("van-engine", ("van-engine", "van-gps"), tmp_path, clock)
    assert trip_of(trips, reading("van-gps", "gps.latitude", 53.9, START)) == [None]
    got = trip_of(trips, reading("van-engine", "vehicle.ignition", 1, START + 60),
                  reading("van-gps", "gps.latitude", 53.91, START + 61),
                  reading("hall-plug", "plug.power", 5, START + 61))
    assert got == ["2026-12-02T10:01:00", "2026-12-02T10:01:00", None]

    restarted = Trips("van-engine", ("van-engine", "van-gps"), tmp_path, clock)
    got = trip_of(restarted, reading("van-engine", "vehicle.ignition", 1, START + 900),
                  reading("van-engine", "vehicle.rpm", 1800, START + 901),
                  reading("van-engine", "vehicle.ignition", 0, START + 1800),
                  reading("van-gps", "gps.latitude", 54.0, START + 1801))
    assert got == ["2026-12-02T10:01:00"] * 3 + [None]
    assert Trips("van-engine", (), tmp_path, clock).current is None
