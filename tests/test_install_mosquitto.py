"""Debian's Mosquitto with the shipped drop-in, as deploy/install.sh leaves it on a Pi.

The broker runs from Debian's stock /etc/mosquitto/mosquitto.conf (byte for byte as the
package ships it), deploy/mosquitto/gateway.conf and the password file install.sh made,
started as the package's own systemd unit starts it, in a network namespace of its own
(tests/programs/pi.py: the machine's broker and folders are not touched). A plug on the
hall's Wi-Fi is a client out here, on the other end of a veth pair: a non-loopback
address. It must start (it refused: "Duplicate persistence_location value"), listen on
the network (Mosquitto 2 with no listener is local-only), refuse anonymous clients and
wrong passwords, and let a device in once it is added as the README says.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from programs.pi import REPO, InView, Netns, PiRoot, Service, unavailable, unit_settings

WHY_NOT = unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None,
                                reason=f"cannot try the Pi install here: {WHY_NOT}")


@pytest.fixture(scope="module")
def pi(tmp_path_factory: pytest.TempPathFactory) -> PiRoot:
    root = PiRoot(tmp_path_factory.mktemp("pi") / "root")
    done = root.install()
    assert done.returncode == 0, done.stdout + done.stderr
    return root


@pytest.fixture(scope="module")
def netns() -> Iterator[Netns]:
    with Netns() as ns:
        yield ns


@pytest.fixture(scope="module")
def mosquitto_service(pi: PiRoot) -> Service:
    """The package's mosquitto.service."""
    return Service(unit_settings(pi.mosquitto_unit))


@pytest.fixture(scope="module")
def broker(pi: PiRoot, netns: Netns, mosquitto_service: Service,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[InView]:
    """Mosquitto as its unit starts it (ExecStartPre, ExecStart), ready on the network."""
    unit = mosquitto_service
    argv = unit.command(pi, unit.settings["ExecStart"][-1], netns,
                        before=unit.settings.get("ExecStartPre", []))
    program = InView("mosquitto", tmp_path_factory.mktemp("broker"), argv, netns.address, 1883)
    try:
        program.start()  # ready: port 1883 of its network address accepts connections
        yield program
    finally:
        program.close()


def broker_log(pi: PiRoot) -> str:
    """Mosquitto's log, where Debian's mosquitto.conf puts it."""
    return pi.real("/var/log/mosquitto/mosquitto.log").read_text(errors="replace")


def gateway_password(pi: PiRoot) -> str:
    return pi.real("/etc/edge-gateway/credentials/mqtt_password").read_text().strip()


def client(user: str | None = None, password: str | None = None) -> mqtt.Client:
    """An MQTT 3.1.1 client (what Tasmota and Shelly speak), not connected yet."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if user is not None:
        c.username_pw_set(user, password)
    return c


def login(address: str, user: str | None = None, password: str | None = None) -> str:
    """Connect to address:1883 and say what the broker answered (its CONNACK)."""
    c = client(user, password)
    answer: list[str] = []
    done = threading.Event()

    def on_connect(cl: mqtt.Client, userdata: object, flags: object, reason: object,
                   properties: object) -> None:
        answer.append(str(reason))
        done.set()

    c.on_connect = on_connect
    c.connect(address, 1883)
    c.loop_start()
    try:
        done.wait(10)
    finally:
        c.disconnect()
        c.loop_stop()
    return answer[0] if answer else "no answer"


def test_debian_stock_config_with_the_drop_in_starts_on_the_network(pi, broker, netns):
    shipped = (REPO / "deploy" / "mosquitto" / "gateway.conf").read_bytes()
    assert pi.real("/etc/mosquitto/conf.d/gateway.conf").read_bytes() == shipped
    assert "include_dir /etc/mosquitto/conf.d" in \
        pi.real("/etc/mosquitto/mosquitto.conf").read_text()  # the package's, md5 checked
    log = broker_log(pi)
    assert "Opening ipv4 listen socket on port 1883." in log, log
    assert "Error" not in log + broker.log_text(), log + broker.log_text()
    assert netns.address != "127.0.0.1" and broker.running


def test_clients_must_log_in(pi, broker, netns):
    assert login(netns.address) == "Not authorized"
    assert login(netns.address, "gateway", "not-the-password") == "Not authorized"
    assert login(netns.address, "gateway", gateway_password(pi)) == "Success"
    log = broker_log(pi)
    assert f"New client connected from {netns.host_address}:" in log, log
    assert "u'gateway'" in log, log


def test_a_device_added_as_the_readme_says_reaches_the_gateway(pi, broker, netns,
                                                               mosquitto_service):
    device, secret = "kitchen-urn", "urn-secret-1"
    assert login(netns.address, device, secret) == "Not authorized"  # no such user yet

    # README, "Running it as a service": add the device's user, then reload Mosquitto.
    added = pi.run(["mosquitto_passwd", "/etc/mosquitto/passwd", device],
                   input=f"{secret}\n{secret}\n")
    assert added.returncode == 0, added.stderr
    fixed = pi.run(["chown", "mosquitto:mosquitto", "/etc/mosquitto/passwd"])
    assert fixed.returncode == 0, fixed.stderr
    # `systemctl reload mosquitto` runs the unit's ExecReload: a SIGHUP to Mosquitto.
    assert mosquitto_service.one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGHUP)

    # The gateway's user subscribes; the plug publishes its SENSOR message.
    received: list[mqtt.MQTTMessage] = []
    arrived = threading.Event()
    gateway = client("gateway", gateway_password(pi))
    subscribed = threading.Event()
    gateway.on_subscribe = lambda *args: subscribed.set()

    def on_message(cl: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(message)
        arrived.set()

    gateway.on_message = on_message
    gateway.connect(netns.address, 1883)
    gateway.loop_start()
    try:
        gateway.subscribe("tele/kitchen_urn/SENSOR", qos=1)
        assert subscribed.wait(10)
        answer = ""
        for _ in range(50):  # the reload takes effect a moment after the signal
            answer = login(netns.address, device, secret)
            if answer == "Success":
                break
            time.sleep(0.1)
        assert answer == "Success", broker_log(pi)
        plug = client(device, secret)
        plug.connect(netns.address, 1883)
        plug.loop_start()
        try:
            payload = b'{"ENERGY":{"Power":2803,"Voltage":238}}'
            plug.publish("tele/kitchen_urn/SENSOR", payload, qos=1).wait_for_publish(10)
        finally:
            plug.disconnect()
            plug.loop_stop()
        assert arrived.wait(10)
    finally:
        gateway.disconnect()
        gateway.loop_stop()
    assert [(m.topic, m.payload) for m in received] == [("tele/kitchen_urn/SENSOR", payload)]
    assert f"New client connected from {netns.host_address}:" in broker_log(pi)
    assert f"u'{device}'" in broker_log(pi)
    stat = Path(pi.real("/etc/mosquitto/passwd")).stat()
    assert (stat.st_mode & 0o777) == 0o600
