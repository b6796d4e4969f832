"""A van's trip through its ELM327 adapter and GPS, end to end into VictoriaMetrics:
ignition off (no ECU answers), on, a drive, a trouble code set and cleared, the adapter
pulled out and plugged back in mid-trip, ignition off again. Every expected reading
arrives with the ECU that sent it; a PID the car does not have is said once and not
polled; status tells the adapter's state.

Real programs: the simulator's ELM327 and GPS on pseudo-terminals, Mosquitto (the
gateway's local broker), a gateway process, VictoriaMetrics.
"""

from __future__ import annotations

import time


def series_values(victoria, name: str, **labels: str) -> list[float]:
    match = "{" + ",".join([f'__name__="{name}"', *(f'{k}="{v}"' for k, v in labels.items())]) \
        + "}"
    return [v for item in victoria.export(match) for v in item["values"]]


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def test_a_trip_reaches_victoriametrics(mosquitto, victoria, make_gateway, van):
    gw = make_gateway({
        "gateway": {"name": "van-1", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "sources": [
            {"name": "obd", "type": "elm327", "port": str(van.obd_link), "idle_every": 0.5,
             "retry_min": 0.2, "retry_max": 1, "trouble_codes_every": 0.5,
             "battery_every": 1,
             "pids": {"rpm": 0.2, "speed": 0.2, "coolant": 0.5, "intake": 1,
                      "throttle": 0.5, "fuel_level": 1, "module_voltage": 1,
                      "engine_load": 0.5, "5C": 1}},
            {"name": "gps", "type": "serial", "port": str(van.gps_link)}],
        "devices": [{"id": "van-engine", "profile": "elm327", "source": "obd"},
                    {"id": "van-gps", "profile": "nmea", "source": "gps"}],
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url}],
        "trips": {"ignition": "van-engine"},
    })
    gw.start()

    def obd() -> dict:
        return next(s for s in gw.status()["sources"] if s["name"] == "obd")

    # Parked, engine off: the adapter answers, no ECU does.
    assert wait_until(lambda: obd()["ready"] and obd()["ignition"] is False, 15), obd()
    assert wait_until(lambda: 0.0 in series_values(victoria, "vehicle_ignition"), 15)
    assert wait_until(lambda: series_values(victoria, "vehicle_battery_voltage"), 15)

    van.do("ignition-on")
    assert wait_until(lambda: obd()["ignition"] is True, 15), obd()
    van.do("drive")
    assert wait_until(lambda: any(v > 5 for v in series_values(victoria, "vehicle_speed")), 30)
    van.do("dtc", code="P0133")
    assert wait_until(lambda: 1.0 in series_values(victoria, "vehicle_trouble_code",
                                                   code="P0133", ecu="7E8"), 15)

    # The adapter pulled out mid-trip and plugged back in: the gateway carries on.
    van.unplug("obd")
    assert wait_until(lambda: not obd()["ready"], 10), obd()
    time.sleep(0.5)
    van.plug_in("obd")
    assert wait_until(lambda: obd()["ready"] and obd()["ignition"] is True, 15), obd()
    before = len(series_values(victoria, "vehicle_rpm"))
    assert wait_until(lambda: len(series_values(victoria, "vehicle_rpm")) > before + 3, 15)

    van.do("clear-dtc")
    assert wait_until(lambda: 0.0 in series_values(victoria, "vehicle_trouble_code",
                                                   code="P0133"), 15)
    van.do("stop")
    van.do("ignition-off")
    assert wait_until(lambda: obd()["ignition"] is False, 15), obd()

    for name in ("vehicle_rpm", "vehicle_speed", "vehicle_coolant_temperature",
                 "vehicle_intake_temperature", "vehicle_throttle", "vehicle_fuel_level",
                 "vehicle_voltage", "vehicle_engine_load", "vehicle_trouble_codes",
                 "gps_latitude", "gps_longitude", "gps_speed"):
        assert series_values(victoria, name), name
    rpm = victoria.series('{__name__="vehicle_rpm"}')
    assert rpm and all(s.get("ecu") == "7E8" and s.get("device") == "van-engine"
                       for s in rpm), rpm
    fuel = series_values(victoria, "vehicle_fuel_level")
    assert all(60 < v < 66 for v in fuel), fuel  # the van set off with 64 %
    assert series_values(victoria, "vehicle_ignition")[-1] == 0.0
    # One trip, from ignition on to off: every reading of it, the engine's and the GPS's,
    # carries its tag; none before it or after.
    trips = {s.get("trip") for s in victoria.series('{__name__="vehicle_rpm"}')}
    assert len(trips) == 1 and None not in trips, trips  # the engine answers only in it
    (trip,) = trips
    # The GPS reports parked too: its readings of the trip have the tag, the others
    # (once the van is parked again: the next fix) not.
    assert wait_until(lambda: {s.get("trip") for s in
                               victoria.series('{__name__="gps_latitude"}')} == {trip, None},
                      10), victoria.series('{__name__="gps_latitude"}')
    assert set(series_values(victoria, "vehicle_ignition", trip=trip)) == {1.0, 0.0}
    untagged = [v for item in victoria.export('{__name__="vehicle_ignition",trip=""}')
                for v in item["values"]]
    assert untagged and set(untagged) == {0.0}, untagged  # parked before and after
    assert "trip" in gw.status() and gw.status()["trip"] is None
    # 5C (oil temperature) is not a PID this car has: said once, never polled.
    assert gw.log_text().count("does not support PID 5C") == 1, gw.log_text()
    assert obd()["not_supported"] == ["5C"]
    status = gw.status()
    assert not status["ingest"]["undecodable"], status["ingest"]
