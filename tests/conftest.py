"""Shared fixtures: real programs on free loopback ports, and the Datadog intake stand-in.

Helpers live in ``tests/programs`` (Mosquitto, VictoriaMetrics, free ports) and
``tests/standins`` (Datadog); both are imported as top-level packages from this
directory, which pytest puts on ``sys.path`` (the guard below makes sure).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from programs.mosquitto import Mosquitto
from programs.victoria import VictoriaMetrics
from standins.datadog_intake import DatadogIntake


def _attach_log_on_failure(request: pytest.FixtureRequest, name: str, text: str) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        report.sections.append((f"{name} log", text[-8000:]))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the item so fixtures can add program logs to failures."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def mosquitto(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Mosquitto]:
    """A started Mosquitto broker on a free loopback port; always stopped afterwards."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    try:
        broker.start()
        yield broker
    finally:
        broker.close()
        _attach_log_on_failure(request, "mosquitto", broker.log_text())


@pytest.fixture
def victoria(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[VictoriaMetrics]:
    """A started VictoriaMetrics on a free loopback port; always stopped afterwards."""
    vm = VictoriaMetrics(tmp_path_factory.mktemp("victoria"))
    try:
        vm.start()
        yield vm
    finally:
        vm.close()
        _attach_log_on_failure(request, "victoria-metrics", vm.log_text())


@pytest.fixture
def datadog_intake() -> Iterator[DatadogIntake]:
    """The Datadog metrics intake stand-in, serving on a free loopback port."""
    intake = DatadogIntake()
    intake.start()
    try:
        yield intake
    finally:
        intake.close()


@pytest.fixture
def make_gateway(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """Factory for gateway processes (`gateway run --config`); all stopped afterwards.

    make_gateway(config_dict, env=None) -> GatewayProcess (not started).
    """
    from programs.gateway import GatewayProcess

    made: list[GatewayProcess] = []

    def make(config: dict, env: dict | None = None) -> GatewayProcess:
        gw = GatewayProcess(tmp_path_factory.mktemp("gateway"), config, env)
        made.append(gw)
        return gw

    try:
        yield make
    finally:
        for gw in made:
            gw.close()
            _attach_log_on_failure(request, f"gateway {gw.workdir.name}", gw.log_text())


@pytest.fixture
def publisher(mosquitto: Mosquitto):
    """A connected paho client on the `mosquitto` broker (publish with QoS 1 and wait)."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.fixture
def pins() -> Iterator[object]:
    """gpiozero's mock pins as the pin factory of everything made meanwhile (drive an
    input with pins.pin(17).drive_high(); read an output's pins.pin(23).state)."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = None


@pytest.fixture
def van(tmp_path: Path) -> Iterator[object]:
    """The simulated van (tests/programs/van.py) running on the wall clock, parked."""
    from programs.van import Van

    v = Van(tmp_path)
    v.start()
    yield v
    v.close()
