"""deploy/install.sh on a Pi, tried here end to end as far as it goes without systemd.

The script runs (apt-get, useradd and systemctl skipped) in a temporary root seen at the
Pi's real paths (tests/programs/pi.py), twice, with a user's changes in between, as an
update would: what it ships is replaced, what is yours is kept. Then the gateway starts
as its unit says (ExecStartPre, then ExecStart as User=gateway with the drop-in's
LoadCredential=) beside Debian's Mosquitto in a network namespace, a plug on the network
logs in and its reading lands in the installed default sink,
/var/lib/edge-gateway/readings.jsonl, and `gateway status` run by hand as the service's
user (the command on the PATH, no credentials handed over) shows it.
"""

from __future__ import annotations

import grp
import json
import pwd
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from programs.pi import REPO, InView, Netns, PiRoot, Service, unavailable, unit_settings

WHY_NOT = unavailable()
pytestmark = pytest.mark.skipif(WHY_NOT is not None,
                                reason=f"cannot try the Pi install here: {WHY_NOT}")

CONFIG = "/etc/edge-gateway/gateway.yaml"
CREDENTIAL = "/etc/edge-gateway/credentials/mqtt_password"
PASSWORD_FILE = "/etc/mosquitto/passwd"
DROP_IN = "/etc/systemd/system/edge-gateway.service.d/credentials.conf"
UNIT = "/etc/systemd/system/edge-gateway.service"
MOSQUITTO_DROP_IN = "/etc/mosquitto/conf.d/gateway.conf"
READINGS = "/var/lib/edge-gateway/readings.jsonl"
# The user's changes between the two runs.
DEVICE, DEVICE_SECRET = "kitchen-urn", "urn-secret-1"
CONFIG_EDIT = "# tags: {site: kilnwick}  -- the hall committee was here\n"
DROP_IN_EDIT = "Environment=HALL=kilnwick\n"


@dataclass
class Installed:
    """The root after two runs of install.sh, and what each run said and left."""

    pi: PiRoot
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    after_first: dict[str, bytes]
    yours: dict[str, bytes]  # after the user's changes, before the second run


def contents(pi: PiRoot) -> dict[str, bytes]:
    paths = (CONFIG, CREDENTIAL, PASSWORD_FILE, DROP_IN, UNIT, MOSQUITTO_DROP_IN,
             "/usr/local/bin/gateway")
    return {p: pi.real(p).read_bytes() for p in paths if pi.real(p).exists()}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    pi = PiRoot(tmp_path_factory.mktemp("pi") / "root")
    first = pi.install()
    assert first.returncode == 0, first.stdout + first.stderr
    after_first = contents(pi)
    # The user adds a device to Mosquitto, edits the config and the drop-in; and someone
    # edited the files install.sh ships, which they were told not to.
    added = pi.run(["mosquitto_passwd", PASSWORD_FILE, DEVICE],
                   input=f"{DEVICE_SECRET}\n{DEVICE_SECRET}\n")
    assert added.returncode == 0, added.stderr
    with pi.real(CONFIG).open("a") as f:
        f.write(CONFIG_EDIT)
    with pi.real(DROP_IN).open("a") as f:
        f.write(DROP_IN_EDIT)
    for shipped in (UNIT, MOSQUITTO_DROP_IN):
        with pi.real(shipped).open("a") as f:
            f.write("# a local edit that the next install replaces\n")
    yours = contents(pi)
    second = pi.install()
    assert second.returncode == 0, second.stdout + second.stderr
    return Installed(pi, first, second, after_first, yours)


def test_first_run_makes_what_the_pi_needs(installed):
    pi, out = installed.pi, installed.first.stdout
    password = installed.after_first[CREDENTIAL].decode().strip()
    gw = pi.gateway_uid

    assert len(password) >= 32
    assert password not in out + installed.first.stderr  # never shown
    assert_owner(pi.real(CREDENTIAL), 0, gw, 0o640)  # root:gateway: systemd and the user
    assert_owner(pi.real(CREDENTIAL).parent, 0, gw, 0o750)
    hashed = installed.after_first[PASSWORD_FILE].decode()
    assert hashed.startswith("gateway:$7$") and password not in hashed  # hashed, not plain
    assert_owner(pi.real(PASSWORD_FILE), uid_of("mosquitto"), gid_of("mosquitto"), 0o600)

    config = installed.after_first[CONFIG].decode()
    assert f"  name: {socket.gethostname().split('.')[0]} " in config
    assert "password: ${credential:mqtt_password}" in config
    assert_owner(pi.real(CONFIG), 0, gw, 0o640)
    assert "LoadCredential=mqtt_password:" + CREDENTIAL in installed.after_first[DROP_IN].decode()
    assert_owner(pi.real("/var/lib/edge-gateway"), gw, gw, 0o750)
    assert stat.S_IMODE(pi.real("/usr/local/bin/gateway").stat().st_mode) == 0o755
    assert "made a password for the MQTT user gateway" in out
    assert "wrote /etc/edge-gateway/gateway.yaml" in out


def test_running_it_again_keeps_yours_and_replaces_ours(installed):
    pi = installed.pi
    now = contents(pi)
    for yours in (CONFIG, CREDENTIAL, PASSWORD_FILE, DROP_IN):
        assert now[yours] == installed.yours[yours], yours
    assert now[CONFIG].decode().endswith(CONFIG_EDIT)
    assert now[DROP_IN].decode().endswith(DROP_IN_EDIT)
    assert f"\n{DEVICE}:$7$" in now[PASSWORD_FILE].decode()
    assert now[UNIT] == (REPO / "deploy/systemd/edge-gateway.service").read_bytes()
    assert now[MOSQUITTO_DROP_IN] == (REPO / "deploy/mosquitto/gateway.conf").read_bytes()
    assert now["/usr/local/bin/gateway"] == (REPO / "deploy/bin/gateway").read_bytes()
    assert "made" not in installed.second.stdout and "wrote" not in installed.second.stdout
    assert_owner(pi.real(PASSWORD_FILE), uid_of("mosquitto"), gid_of("mosquitto"), 0o600)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed here")
def test_the_unit_and_its_drop_in_pass_systemd_analyze_verify(installed):
    # In the Pi's view: the unit and drop-in in /etc/systemd/system, the program in /opt.
    done = installed.pi.run(["systemd-analyze", "verify", "edge-gateway.service"])
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.fixture
def netns() -> Iterator[Netns]:
    with Netns() as ns:
        yield ns


def test_a_plug_on_the_network_reaches_the_installed_file_sink(installed, netns,
                                                               tmp_path_factory):
    pi = installed.pi
    mosquitto = Service(unit_settings(pi.mosquitto_unit))
    broker = InView("mosquitto", tmp_path_factory.mktemp("broker"),
                    mosquitto.command(pi, mosquitto.settings["ExecStart"][-1], netns,
                                      before=mosquitto.settings.get("ExecStartPre", [])),
                    netns.address, 1883)
    service = Service.installed(pi)
    assert service.credentials == [("mqtt_password", CREDENTIAL)]
    check = subprocess.run(service.command(pi, service.settings["ExecStartPre"][-1], netns),
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{CONFIG}: OK" in check.stdout

    log = tmp_path_factory.mktemp("gateway")
    gateway = InView("gateway", log, service.command(pi, service.one("ExecStart") or "", netns),
                     netns.address, 9108,
                     ready=lambda: "connected to MQTT broker" in (log / "output.log").read_text())
    readings = pi.real(READINGS)
    try:
        broker.start()
        gateway.start(timeout=60)
        plug = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        plug.username_pw_set(DEVICE, DEVICE_SECRET)
        plug.connect(netns.address, 1883)
        plug.loop_start()
        try:
            # Until the gateway's subscription is in place a message reaches nobody; the
            # plug reports again, as it does every teleperiod.
            found: list[dict] = []
            deadline = time.monotonic() + 60
            power = 0
            while not found and time.monotonic() < deadline:
                power += 1
                payload = json.dumps({"ENERGY": {"Power": power, "Voltage": 238}})
                plug.publish("tele/kitchen_urn/SENSOR", payload, qos=1).wait_for_publish(10)
                time.sleep(0.5)
                if readings.exists():
                    found = [r for r in map(json.loads, readings.read_text().splitlines())
                             if r["metric"] == "plug.power"]
        finally:
            plug.disconnect()
            plug.loop_stop()
        assert found, gateway.log_text()[-3000:]
        first = found[0]
        assert 1 <= first["value"] <= power
        assert first["tags"]["device"] == DEVICE
        assert first["tags"]["gateway"] == socket.gethostname().split(".")[0]

        # By hand, as the README says: the command on the PATH, as the service's user.
        status = pi.run(["gateway", "status", "--config", CONFIG], netns=netns, user="gateway")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "mqtt 127.0.0.1:1883: connected" in status.stdout, status.stdout
        assert "    local [" in status.stdout, status.stdout
        assert gateway.stop() == 0  # SIGTERM, as systemd stops it
    finally:
        gateway.close()
        broker.close()
    assert_owner(readings, pi.gateway_uid, pi.gateway_uid, 0o644)
    broker_log = pi.real("/var/log/mosquitto/mosquitto.log").read_text()
    assert f"New client connected from {netns.host_address}:" in broker_log
    assert "u'gateway'" in broker_log and f"u'{DEVICE}'" in broker_log


# -- owners ---------------------------------------------------------------------------

def uid_of(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def gid_of(name: str) -> int:
    return grp.getgrnam(name).gr_gid


def assert_owner(path: Path, uid: int, gid: int, mode: int) -> None:
    st = path.stat()
    assert (st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode))) == (uid, gid, oct(mode)), path
