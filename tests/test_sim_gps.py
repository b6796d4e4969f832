"""The simulated GPS writes valid NMEA RMC/GGA for the van's position, on sim time."""

import math
from datetime import UTC, datetime
from itertools import pairwise

import pynmea2
import pytest
import serial

from firmware_sim.car import nmea
from firmware_sim.car.gps import GpsDevice
from firmware_sim.car.routes import ROUTES
from firmware_sim.car.vehicle import Vehicle
from firmware_sim.devices.base import ScenarioError
from firmware_sim.engine import Simulation
from firmware_sim.network import Recording

START = 1_710_226_800.0  # 2024-03-12 07:00:00 UTC
ROUTE = ROUTES["kilnwick-driffield"]


@pytest.fixture
def car():
    sim = Simulation(START, seed=5, timezone="Europe/London")
    vehicle = Vehicle(sim, {})
    vehicle.start()
    return vehicle


def gps(car, **spec):
    return GpsDevice(car.sim, {"id": "gps", "kind": "gps", **spec}, car)


def metres_from_route(lat, lon):
    """Distance from the route's polyline, on a local flat projection (fine over 20 km)."""
    k = math.cos(math.radians(lat))

    def xy(la, lo):
        return (lo * k * 111_320.0, la * 110_574.0)

    px, py = xy(lat, lon)
    best = math.inf
    for a, b in pairwise(ROUTE):
        (ax, ay), (bx, by) = xy(a.lat, a.lon), xy(b.lat, b.lon)
        dx, dy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
        best = min(best, math.hypot(px - ax - t * dx, py - ay - t * dy))
    return best


def nmea_distance(a, b):
    k = math.cos(math.radians(a.latitude))
    east = (b.longitude - a.longitude) * k * 111_320
    return math.hypot(east, (b.latitude - a.latitude) * 110_574)


def run_reading(car, port, until):
    """Run the simulation to `until`, reading the port as it goes, as a real reader does."""
    text = b""
    while car.sim.now < until:
        car.sim.run_until(min(until, car.sim.now + 10))
        text += port.read(port.in_waiting)
    # The kernel hands pty bytes over asynchronously: wait for the last ones.
    port.timeout = 0.2
    text += port.read(1 << 20)
    assert text.endswith(b"\r\n")
    return text.split(b"\r\n")[:-1]


def test_recording_void_then_fixed_on_sim_time(car):
    net = Recording(car.sim)
    receiver = gps(car, fix_after=5)
    receiver.start(net)
    car.sim.run_until(START + 20)
    assert len(net.messages) == 2 * 21  # RMC and GGA each second, 07:00:00 to 07:00:20
    for rec in net.messages:
        assert rec.topic == "serial/gps"
        assert rec.payload.endswith(b"\r\n")
        msg = pynmea2.parse(rec.payload.decode("ascii").strip(), check=True)
        when = datetime.fromtimestamp(rec.ts, UTC)
        assert msg.timestamp == when.time().replace(tzinfo=UTC)
        if isinstance(msg, pynmea2.RMC):
            assert msg.datestamp == when.date()
            assert msg.status == ("V" if rec.ts - START < 5 else "A")
        else:
            assert msg.gps_qual == (0 if rec.ts - START < 5 else 1)
        if rec.ts - START < 5:
            assert msg.lat == "" and msg.lon == ""
        else:
            assert metres_from_route(msg.latitude, msg.longitude) < 15
            if isinstance(msg, pynmea2.GGA):
                assert 6 <= int(msg.num_sats) <= 11
                assert msg.altitude == pytest.approx(ROUTE[0].alt, abs=10)
    assert "fix" in receiver.describe()


def test_pty_positions_follow_the_route_while_driving(car):
    receiver = gps(car)
    receiver.start(None)
    port = serial.Serial(receiver.endpoint(), timeout=0.5)
    try:
        car.perform("ignition-on", {})
        lines = run_reading(car, port, START + 30)
        car.perform("drive", {})
        lines += run_reading(car, port, START + 150)
    finally:
        port.close()
        receiver.stop()
    sentences = [pynmea2.parse(line.decode("ascii"), check=True) for line in lines]
    rmc = [s for s in sentences if isinstance(s, pynmea2.RMC)]
    assert len(rmc) == 151
    seconds = [datetime.combine(s.datestamp, s.timestamp).timestamp() for s in rmc]
    assert seconds == [START + i for i in range(151)]
    fixed = [s for s in rmc if s.status == "A"]
    assert all(metres_from_route(s.latitude, s.longitude) < 15 for s in fixed)
    start, end = fixed[0], fixed[-1]
    moved = nmea_distance(start, end)
    assert moved > 500  # two minutes of driving
    assert end.spd_over_grnd > 10  # knots
    assert start.latitude > end.latitude  # the route heads south from Kilnwick first
    assert receiver.dropped == {"no-reader": 0, "buffer-full": 0}


def test_no_reader_drops_instead_of_queueing(car):
    receiver = gps(car)
    receiver.start(None)
    try:
        car.sim.run_until(START + 60)
        assert receiver.dropped["no-reader"] == 2 * 61
        port = serial.Serial(receiver.endpoint(), timeout=0.5)
        try:
            lines = run_reading(car, port, START + 65)
        finally:
            port.close()
    finally:
        receiver.stop()
    first = pynmea2.parse(lines[0].decode("ascii"), check=True)
    # A reader that opens the port late sees what is sent from then on, not a stale backlog.
    assert first.timestamp == datetime.fromtimestamp(START + 61, UTC).time().replace(tzinfo=UTC)
    assert len(lines) == 2 * 5


def test_ignition_powered_receiver_starts_without_a_fix(car):
    net = Recording(car.sim)
    receiver = gps(car, power="ignition", fix_after=3)
    receiver.start(net)
    car.sim.run_until(START + 30)
    assert net.messages == []
    car.perform("ignition-on", {})
    car.sim.run_until(START + 40)
    rmc = [pynmea2.parse(m.payload.decode().strip(), check=True) for m in net.messages
           if m.payload.startswith(b"$GPRMC")]
    assert [m.status for m in rmc] == ["V"] * 3 + ["A"] * 7


def test_sentence_formatting_in_every_hemisphere():
    fix = nmea.Fix(lat=-33.856784, lon=151.215297, alt=3.0, speed_kmh=18.52, course=359.99,
                   satellites=9, hdop=0.9, geoid_sep=22.0)
    ts = datetime(2024, 2, 29, 23, 59, 59, 990000, tzinfo=UTC).timestamp()
    line = nmea.rmc("GN", ts, fix).decode("ascii")
    assert line.endswith("\r\n")
    msg = pynmea2.parse(line.strip(), check=True)
    assert (msg.lat_dir, msg.lon_dir) == ("S", "E")
    assert msg.latitude == pytest.approx(-33.856784, abs=1e-5)
    assert msg.longitude == pytest.approx(151.215297, abs=1e-5)
    assert msg.spd_over_grnd == pytest.approx(10.0)
    assert msg.datestamp.isoformat() == "2024-02-29"
    assert line.split(",")[1] == "235959.99"
    # 53°59.99999' must not print as 5359.10000 or 5360.0000.
    gga = nmea.gga("GP", ts, nmea.Fix(53.99999999, -0.5, 20, 0, 0, 8, 1, 47)).decode()
    assert gga.split(",")[2] == "5400.0000"
    assert pynmea2.parse(gga.strip(), check=True).longitude == pytest.approx(-0.5)
    wrong = "01" if not line.strip().endswith("01") else "02"
    with pytest.raises(pynmea2.ChecksumError):
        pynmea2.parse(line.strip()[:-2] + wrong, check=True)


def test_settings_are_checked(car):
    with pytest.raises(ScenarioError, match="power"):
        gps(car, power="battery")
    with pytest.raises(ScenarioError, match="baud"):
        gps(car, baud=4800)
    with pytest.raises(ScenarioError, match="car"):
        GpsDevice(car.sim, {"id": "gps", "kind": "gps"}, object())
