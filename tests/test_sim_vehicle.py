"""The simulated van drives, warms up, charges and burns fuel like a real one."""

from itertools import pairwise

import pynmea2
import pytest

from firmware_sim.car.routes import ROUTES, distance_m, length_m
from firmware_sim.car.vehicle import Vehicle
from firmware_sim.devices.base import ScenarioError
from firmware_sim.engine import Simulation
from firmware_sim.network import Recording
from firmware_sim.runner import ScenarioRun
from firmware_sim.scenario import load_scenario

START = 1_710_226_800.0
ROUTE = ROUTES["kilnwick-driffield"]


def van(seed=1, **params):
    sim = Simulation(START, seed=seed, timezone="Europe/London")
    car = Vehicle(sim, {"kind": "car", **params})
    car.start()
    return car


def samples(car, seconds):
    """The van's state after each simulated second."""
    out = []
    for _ in range(int(seconds)):
        car.sim.run_until(car.sim.now + 1)
        out.append(car.state())
    return out


def test_default_route_is_a_plausible_local_trip():
    assert 14_000 < length_m(ROUTE) < 18_000
    assert ROUTE[0].lat == pytest.approx(53.95, abs=0.01)  # Kilnwick
    assert ROUTE[-1].lat == pytest.approx(54.006, abs=0.01)  # Driffield
    back = ROUTES["driffield-kilnwick"]
    assert (back[0].lat, back[-1].lat) == (ROUTE[-1].lat, ROUTE[0].lat)


def test_a_trip_uses_fuel_adds_distance_and_ends_at_the_destination():
    car = van(fuel=64)
    car.perform("ignition-on", {})
    states = samples(car, 60)
    car.perform("drive", {})
    states += samples(car, 1500)
    fuel = [s.fuel for s in states]
    odometer = [s.odometer for s in states]
    assert all(b <= a for a, b in pairwise(fuel))
    assert all(b >= a for a, b in pairwise(odometer))
    assert odometer[-1] - odometer[0] == pytest.approx(length_m(ROUTE) / 1000, rel=0.02)
    assert 0.5 < fuel[0] - fuel[-1] < 4  # about a litre and a half of a 60 l tank
    speeds = [s.speed_kmh for s in states]
    assert max(speeds) < 100
    # Smooth: no more than about 0.3 g either way, second to second.
    assert max(abs(b - a) / 3.6 for a, b in pairwise(speeds)) < 3.1
    end = states[-1]
    assert distance_m(end.lat, end.lon, ROUTE[-1].lat, ROUTE[-1].lon) < 5
    assert end.speed_kmh == 0 and end.route_left_m == 0
    assert 700 < end.rpm < 900  # idling where it stopped
    assert "ignition on, 0 km/h" in car.describe()


def test_coolant_warms_with_the_engine_and_cools_when_it_stops():
    car = van(ambient=8)
    parked = samples(car, 600)
    assert parked[-1].coolant == pytest.approx(8, abs=0.1)
    car.perform("ignition-on", {})
    running = samples(car, 900)
    coolant = [s.coolant for s in running]
    assert all(b >= a - 0.5 for a, b in pairwise(coolant))
    assert 30 < coolant[300] < 80  # five minutes in: warm, not yet hot
    assert 86 <= coolant[-1] <= 93  # the thermostat holds it
    car.perform("ignition-off", {})
    cooling = samples(car, 3600)
    assert 35 < cooling[-1].coolant < 60


def test_charging_voltage_only_while_running():
    car = van()
    assert all(12.3 <= s.voltage <= 12.7 for s in samples(car, 60))
    car.perform("ignition-on", {})
    running = samples(car, 300)[3:]  # past the crank's dip
    assert all(13.8 <= s.voltage <= 14.5 for s in running)
    car.perform("ignition-off", {})
    assert all(12.3 <= s.voltage <= 12.9 for s in samples(car, 60))


def test_stop_pulls_over_and_drive_carries_on():
    car = van()
    car.perform("ignition-on", {})
    samples(car, 30)
    car.perform("drive", {})
    samples(car, 240)
    left = car.state().route_left_m
    car.perform("stop", {})
    stopped = samples(car, 60)
    assert stopped[-1].speed_kmh == 0 and stopped[-1].running
    assert stopped[-1].route_left_m == 0
    car.perform("drive", {})
    samples(car, 1500)
    end = car.state()
    assert distance_m(end.lat, end.lon, ROUTE[-1].lat, ROUTE[-1].lon) < 5
    assert end.odometer - stopped[-1].odometer == pytest.approx(left / 1000, abs=0.5)


def test_drive_back_and_to_given_points():
    car = van()
    car.perform("ignition-on", {})
    samples(car, 10)
    car.perform("drive", {"route": [[53.9489, -0.4901], [53.9440, -0.4915, 48]]})
    samples(car, 120)
    here = car.state()
    assert distance_m(here.lat, here.lon, 53.9440, -0.4915) < 5
    car.perform("drive", {})  # nearer the start of the home route than its end: goes on to it
    samples(car, 1800)
    there = car.state()
    assert distance_m(there.lat, there.lon, ROUTE[-1].lat, ROUTE[-1].lon) < 5
    car.perform("drive", {})  # now at the far end: home the same way back
    samples(car, 1800)
    home = car.state()
    assert distance_m(home.lat, home.lon, ROUTE[0].lat, ROUTE[0].lon) < 5


def test_same_seed_same_trip():
    def trip(seed):
        car = van(seed=seed)
        car.perform("ignition-on", {})
        samples(car, 20)
        car.perform("drive", {})
        return [(round(s.lat, 7), round(s.rpm, 3), round(s.voltage, 4)) for s in samples(car, 300)]

    assert trip(4) == trip(4)
    assert trip(4) != trip(5)


def test_mistakes_in_scenarios_say_what_is_wrong():
    car = van()
    with pytest.raises(ScenarioError, match="ignition-on"):
        car.perform("drive", {})
    with pytest.raises(ScenarioError, match="P0133"):
        car.perform("dtc", {"code": "X9999"})
    with pytest.raises(ScenarioError, match="route"):
        car.perform("ignition-on", {})
        car.perform("drive", {"route": "to-the-moon"})
    with pytest.raises(ScenarioError, match="cannot 'fly'"):
        car.perform("fly", {})
    with pytest.raises(ScenarioError, match="wheels"):
        van(wheels=4)


def test_car_trip_scenario_runs_there_and_back():
    run = ScenarioRun(load_scenario("car-trip"), None, seed=7, start="2024-03-12T07:00")
    net = Recording(run.sim)
    run.network = net
    farthest = 0.0
    run.start_devices()
    try:
        while run.sim.now < run.end:
            run.sim.run_until(run.sim.now + 60)
            s = run.built.world.state()
            farthest = max(farthest, distance_m(s.lat, s.lon, ROUTE[0].lat, ROUTE[0].lon))
    finally:
        for device in run.built.devices:
            device.stop()
    end = run.built.world.state()
    assert farthest > 6_000  # it got to Driffield...
    assert distance_m(end.lat, end.lon, ROUTE[0].lat, ROUTE[0].lon) < 5  # ...and home again
    assert not end.ignition and end.dtcs == ("P0133",)
    gps = [m for m in net.messages if m.topic == "serial/gps"]
    assert len(gps) == 2 * (run.scenario.duration + 1)
    for m in gps[::97]:
        pynmea2.parse(m.payload.decode("ascii").strip(), check=True)
