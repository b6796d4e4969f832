"""The simulated ELM327 answers on a real pseudo-terminal as a real adapter does."""

import os

import pytest
import serial

from firmware_sim.car.elm327 import Elm327Device
from firmware_sim.car.vehicle import Vehicle
from firmware_sim.devices.base import ScenarioError
from firmware_sim.engine import Simulation

START = 1_710_226_800.0  # 2024-03-12 07:00 UTC


@pytest.fixture
def car():
    sim = Simulation(START, seed=3, timezone="Europe/London")
    vehicle = Vehicle(sim, {"fuel": 64, "ambient": 8})
    vehicle.start()
    return vehicle


def plug_in(car, **spec):
    device = Elm327Device(car.sim, {"id": "elm327", "kind": "elm327", **spec}, car)
    device.start(None)
    port = serial.Serial(device.endpoint(), timeout=3)
    return device, port


@pytest.fixture
def elm(car):
    device, port = plug_in(car)
    yield port
    port.close()
    device.stop()


def ask(port, command):
    """Send one command; everything up to and including the prompt, as text."""
    port.write(command.encode("ascii") + b"\r")
    answer = port.read_until(b">")
    assert answer.endswith(b">"), f"no prompt after {command!r}: {answer!r}"
    return answer.decode("ascii")


def init(port):
    """The sequence gateways and python-OBD-style clients send first."""
    for command in ("ATZ", "ATE0", "ATL0", "ATS1", "ATH0"):
        ask(port, command)


def data(answer):
    """The data bytes of a one-line answer, e.g. '41 0C 0C 80' -> b'\\x41\\x0c\\x0c\\x80'."""
    lines = [line for line in answer.split("\r") if line and line not in (">", "SEARCHING...")]
    assert len(lines) == 1, f"expected one line of data in {answer!r}"
    return bytes.fromhex(lines[0])


def run(car, seconds):
    car.sim.run_until(car.sim.now + seconds)


def test_init_sequence_echo_and_prompt(elm):
    assert ask(elm, "ATZ") == "ATZ\r\r\rELM327 v1.5\r\r>"
    assert ask(elm, "ATE0") == "ATE0\rOK\r\r>"  # echoed: echo was still on when it arrived
    assert ask(elm, "ATL0") == "OK\r\r>"
    assert ask(elm, "ATS0") == "OK\r\r>"
    assert ask(elm, "ATH0") == "OK\r\r>"
    assert ask(elm, "ATI") == "ELM327 v1.5\r\r>"
    assert ask(elm, "at @1") == "OBDII to RS232 Interpreter\r\r>"
    assert ask(elm, "ATAT1") == "OK\r\r>"
    assert ask(elm, "ATST64") == "OK\r\r>"
    assert ask(elm, "ATXYZ") == "?\r\r>"
    assert ask(elm, "ATSP0") == "OK\r\r>"
    assert ask(elm, "ATDP") == "AUTO\r\r>"
    assert ask(elm, "ATDPN") == "A0\r\r>"
    # ATZ brings echo back on.
    assert ask(elm, "ATZ") == "\r\rELM327 v1.5\r\r>"
    assert ask(elm, "ATI") == "ATI\rELM327 v1.5\r\r>"


def test_linefeeds_spaces_and_headers(car, elm):
    init(elm)
    car.perform("ignition-on", {})
    run(car, 20)
    assert ask(elm, "010D") == "SEARCHING...\r41 0D 00\r\r>"
    assert ask(elm, "ATS0") == "OK\r\r>"
    assert ask(elm, "010D") == "410D00\r\r>"
    assert ask(elm, "ATL1") == "OK\r\n\r\n>"
    assert ask(elm, "010D") == "410D00\r\n\r\n>"
    ask(elm, "ATL0")
    ask(elm, "ATS1")
    ask(elm, "ATH1")
    # CAN with headers: the ECU's id, then the whole frame, length byte and padding included.
    assert ask(elm, "010D") == "7E8 03 41 0D 00 00 00 00 00\r\r>"


def test_ignition_off_the_ecu_does_not_answer(car, elm):
    init(elm)
    run(car, 60)
    # Searching finds nothing on any bus: the adapter gives up.
    assert ask(elm, "010C") == "SEARCHING...\rUNABLE TO CONNECT\r\r>"
    assert ask(elm, "ATSP6") == "OK\r\r>"
    assert ask(elm, "010C") == "NO DATA\r\r>"
    assert ask(elm, "03") == "NO DATA\r\r>"
    # The adapter itself is powered from the socket's permanent 12 V.
    volts = float(ask(elm, "ATRV").split("V")[0])
    assert 12.2 <= volts <= 12.9


def test_idle_after_ignition_on(car, elm):
    init(elm)
    car.perform("ignition-on", {})
    run(car, 30)
    first = ask(elm, "010C")
    assert first.startswith("SEARCHING...\r41 0C ")
    a, b = data(first)[2:]
    assert 650 <= (a * 256 + b) / 4 <= 1300  # idle, a little fast while cold
    assert ask(elm, "ATDPN") == "A6\r\r>"
    assert ask(elm, "ATDP") == "AUTO, ISO 15765-4 (CAN 11/500)\r\r>"
    assert data(ask(elm, "010D")) == bytes([0x41, 0x0D, 0])
    a, b = data(ask(elm, "0142"))[2:]
    assert 13.8 <= (a * 256 + b) / 1000 <= 14.5
    assert 13.8 <= float(ask(elm, "ATRV").split("V")[0]) <= 14.5
    fuel = data(ask(elm, "012F"))[2] * 100 / 255
    assert fuel == pytest.approx(64, abs=0.5)
    # After ignition off, with the protocol known, the ECU is just silent.
    car.perform("ignition-off", {})
    run(car, 5)
    assert ask(elm, "010C") == "NO DATA\r\r>"


def test_coolant_rises_over_ten_minutes(car, elm):
    init(elm)
    car.perform("ignition-on", {})
    run(car, 5)
    before = data(ask(elm, "0105"))[2] - 40
    run(car, 600)
    after = data(ask(elm, "0105"))[2] - 40
    assert before <= 12
    assert after - before >= 40
    assert after <= 95


def test_speed_while_driving(car, elm):
    init(elm)
    car.perform("ignition-on", {})
    run(car, 60)
    assert data(ask(elm, "010D"))[2] == 0
    car.perform("drive", {})
    run(car, 120)
    speed = data(ask(elm, "010D"))[2]
    assert 20 <= speed <= 100
    a, b = data(ask(elm, "010C"))[2:]
    assert 1000 <= (a * 256 + b) / 4 <= 3000
    load = data(ask(elm, "0104"))[2] * 100 / 255
    assert 5 <= load <= 90


def test_trouble_codes_read_and_cleared(car, elm):
    init(elm)
    car.perform("ignition-on", {})
    run(car, 10)
    assert ask(elm, "03") == "SEARCHING...\r43 00\r\r>"
    car.perform("dtc", {"code": "P0133"})
    # On CAN the count comes first: one code, 01 33 = P0133.
    assert ask(elm, "03") == "43 01 01 33\r\r>"
    status = data(ask(elm, "0101"))
    assert status[2] == 0x81  # check-engine lamp on, one code
    assert ask(elm, "04") == "44\r\r>"
    assert ask(elm, "03") == "43 00\r\r>"
    assert data(ask(elm, "0101"))[2] == 0x00
    assert "DTC" not in car.describe()


def test_trouble_codes_on_an_iso9141_car(car):
    car.perform("dtc", {"code": "P0133"})
    car.perform("dtc", {"code": "C1234"})
    car.perform("dtc", {"code": "U0100"})
    car.perform("dtc", {"code": "P0420"})
    device, port = plug_in(car, bus=3)
    try:
        init(port)
        car.perform("ignition-on", {})
        run(car, 10)
        assert ask(port, "ATSP3") == "OK\r\r>"
        # Three codes a message, no count, padded with zeros.
        assert ask(port, "03") == ("BUS INIT: ...OK\r43 01 33 52 34 C1 00\r"
                                   "43 04 20 00 00 00 00\r\r>")
        ask(port, "ATH1")
        frame = bytes.fromhex(ask(port, "010D").split("\r")[0])
        assert frame[:3] == bytes([0x48, 0x6B, 0x10])
        assert frame[3:-1] == bytes([0x41, 0x0D, 0x00])
        assert frame[-1] == sum(frame[:-1]) & 0xFF
        assert ask(port, "ATDPN") == "3\r\r>"
        # A CAN request finds no CAN bus in this car.
        ask(port, "ATSP6")
        assert ask(port, "0100") == "CAN ERROR\r\r>"
    finally:
        port.close()
        device.stop()


def test_supported_pids_bitmap_matches_what_answers(car, elm):
    init(elm)
    car.perform("ignition-on", {})
    run(car, 10)
    supported = set()
    for base in (0x00, 0x20, 0x40):
        bits = int.from_bytes(data(ask(elm, f"01{base:02X}"))[2:], "big")
        supported |= {base + i for i in range(1, 33) if bits & (1 << (32 - i))}
        if base + 0x20 not in supported:
            break
    assert {0x04, 0x05, 0x0C, 0x0D, 0x0F, 0x11, 0x2F, 0x42} <= supported
    for pid in range(0x01, 0x48):
        answer = ask(elm, f"01{pid:02X}")
        if pid in supported:
            assert data(answer)[:2] == bytes([0x41, pid]), pid
        else:
            assert answer == "NO DATA\r\r>", pid


def test_multi_frame_answers(car, elm):
    init(elm)
    car.perform("ignition-on", {})
    run(car, 10)
    lines = ask(elm, "0902").split("\r")
    assert lines[:2] == ["SEARCHING...", "014"]  # 20 bytes: 49 02 01 + 17 characters
    body = bytes.fromhex("".join(line.split(":")[1] for line in lines[2:5]))
    assert body[:3] == bytes([0x49, 0x02, 0x01])
    assert body[3:].decode() == "WF0XXXTTGXKU12345"
    ask(elm, "ATH1")
    frames = [bytes.fromhex(line[3:]) for line in ask(elm, "0902").split("\r")[:3]]
    assert [f[0] for f in frames] == [0x10, 0x21, 0x22]  # first frame, consecutive frames
    assert frames[0][1] == 20


def test_repeat_hint_and_bad_input(car, elm):
    init(elm)
    car.perform("ignition-on", {})
    run(car, 10)
    assert ask(elm, "01 0d 1").startswith("SEARCHING...\r41 0D")  # spaces, case, count digit
    assert ask(elm, "") == "41 0D 00\r\r>"  # a bare CR repeats the last command
    assert ask(elm, "01GG") == "?\r\r>"
    assert ask(elm, "0") == "?\r\r>"
    assert ask(elm, "0110") == "NO DATA\r\r>"  # MAF: this ECU has no such sensor


def test_link_and_stop(car, tmp_path):
    link = tmp_path / "sim" / "elm327"
    device, port = plug_in(car, link=str(link))
    try:
        assert os.path.realpath(link) == device.endpoint()
        assert ask(port, "ATI") == "ATI\rELM327 v1.5\r\r>"
    finally:
        port.close()
        device.stop()
    assert not link.exists()


def test_settings_are_checked(car):
    with pytest.raises(ScenarioError, match="bus"):
        Elm327Device(car.sim, {"id": "e", "kind": "elm327", "bus": 9}, car)
    with pytest.raises(ScenarioError, match="baud is a line speed"):
        Elm327Device(car.sim, {"id": "e", "kind": "elm327", "baud": "fast"}, car)
    assert Elm327Device(car.sim, {"id": "e", "kind": "elm327", "baud": 38400},
                        car).byte_time == pytest.approx(10 / 38400)
    with pytest.raises(ScenarioError, match="car"):
        Elm327Device(car.sim, {"id": "e", "kind": "elm327"}, object())
