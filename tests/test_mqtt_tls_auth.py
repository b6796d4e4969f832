"""MQTT with a user name and password, and over TLS: the local broker and the upstream one.

Mosquitto runs with anonymous access off (a password file made by
``mosquitto_passwd``) and a second listener speaking TLS with a server
certificate for 127.0.0.1/localhost, signed by a throwaway CA made here with the
``openssl`` command. The gateway must connect with what its config gives it, say
clearly in its log when the broker will not have it, keep running, and never
show the password.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from programs.mosquitto import Mosquitto, ServerTls
from programs.ports import wait_until

USER = "hall-gateway"
PASSWORD = "kettle-7-Quince-ladder"  # distinctive, so a leak is easy to find
NOWHERE = "http://127.0.0.1:9"  # a sink that is never reached; these tests watch ingest
DEVICE = {"id": "defib-socket", "profile": "tasmota", "topic": "defib_socket"}


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: ServerTls
    stranger_ca: Path  # a CA that signed nothing the broker has


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", f"/CN={name}", "-keyout", str(key),
             "-out", str(cert), "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a broker certificate it signed for 127.0.0.1 and localhost, and an unrelated CA."""
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_key = _make_ca(folder, "test-ca")
    stranger_ca, _ = _make_ca(folder, "stranger-ca")
    cert, key = folder / "broker.pem", folder / "broker.key"
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key),
             "-out", str(cert), "-CA", str(ca), "-CAkey", str(ca_key),
             "-addext", "basicConstraints=critical,CA:FALSE",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-addext", "extendedKeyUsage=serverAuth")
    return Pki(ca=ca, server=ServerTls(cafile=ca, certfile=cert, keyfile=key),
               stranger_ca=stranger_ca)


def _broker(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
            **options) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"), **options)
    try:
        broker.start()
        yield broker
    finally:
        broker.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            report.sections.append(("mosquitto log", broker.log_text()[-8000:]))


@pytest.fixture
def locked_broker(tmp_path_factory, request) -> Iterator[Mosquitto]:
    """No anonymous access; the gateway's user and a device's user may connect."""
    yield from _broker(tmp_path_factory, request, users={USER: PASSWORD, "plug": "plug-pw"})


@pytest.fixture
def tls_broker(tmp_path_factory, request, pki) -> Iterator[Mosquitto]:
    """Plain listener for the devices, TLS listener on `tls_port` for the gateway."""
    yield from _broker(tmp_path_factory, request, tls=pki.server)


@pytest.fixture
def upstream(tmp_path_factory, request, pki) -> Iterator[Mosquitto]:
    """The cloud broker: password file and TLS, as one would run it on the internet."""
    yield from _broker(tmp_path_factory, request, users={USER: PASSWORD, "cloud": "cloud-pw"},
                       tls=pki.server)


def _client(client_id: str = "", **kwargs) -> mqtt.Client:
    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, **kwargs)


def _publish_power(broker: Mosquitto, power: float, auth: tuple[str, str] | None = None) -> None:
    """One Tasmota SENSOR message, QoS 1, waiting for the broker's PUBACK."""
    client = _client()
    if auth:
        client.username_pw_set(*auth)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        info = client.publish("tele/defib_socket/SENSOR",
                              json.dumps({"ENERGY": {"Power": power}}), qos=1)
        info.wait_for_publish(10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def _assert_password_not_shown(gw, *more: str) -> None:
    for shown in (gw.log_text(), json.dumps(gw.status()), gw.metrics_text(), *more):
        assert PASSWORD not in shown


def _log_says(gw, text: str, timeout: float = 15) -> bool:
    return wait_until(lambda: text in gw.log_text(), timeout, interval=0.1)


# -- the local broker: user name and password ---------------------------------------------


def test_source_with_password_delivers_readings(locked_broker, victoria, make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall"},
        "mqtt": {"host": locked_broker.host, "port": locked_broker.port,
                 "username": USER, "password": "${MQTT_PASSWORD}"},
        "devices": [DEVICE],
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url}],
    }, env={"MQTT_PASSWORD": PASSWORD})
    gw.start()
    _publish_power(locked_broker, 38, auth=("plug", "plug-pw"))
    assert gw.wait_for(lambda s: gw.sink("vm")["delivered"] >= 1, 15), gw.status()
    (series,) = victoria.export('{__name__="plug_power"}')
    assert series["values"] == [38]
    _assert_password_not_shown(gw)
    assert gw.stop() == 0


def test_source_with_wrong_password_is_refused_and_keeps_running(locked_broker, make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall"},
        "mqtt": {"host": locked_broker.host, "port": locked_broker.port,
                 "username": USER, "password": PASSWORD + "-typo", "reconnect_max": 2},
        "devices": [DEVICE],
        "sinks": [{"name": "vm", "type": "influx", "url": NOWHERE}],
    })
    gw.start(wait_connected=False)
    assert _log_says(gw, "refused the connection"), gw.log_text()
    line = next(ln for ln in gw.log_text().splitlines() if "refused the connection" in ln)
    assert f"{locked_broker.host}:{locked_broker.port}" in line
    assert "Not authorized" in line, line
    # It keeps trying (the password may be fixed on the broker's side) and stays up.
    assert wait_until(lambda: gw.log_text().count("refused the connection") >= 2, 10)
    assert gw.running
    status = gw.status()
    assert status is not None and status["mqtt"]["connected"] is False
    assert status["mqtt"]["broker"] == f"{locked_broker.host}:{locked_broker.port}"
    shown = gw.cli("status", "--config", str(gw.config_path)).stdout
    assert f"mqtt {locked_broker.host}:{locked_broker.port}: NOT CONNECTED" in shown
    _assert_password_not_shown(gw, shown)  # neither the right one nor the mistyped one
    assert PASSWORD + "-typo" not in gw.log_text()
    assert gw.stop() == 0


# -- the local broker over TLS ------------------------------------------------------------


def _tls_source_config(broker: Mosquitto, ca_file: Path) -> dict:
    return {
        "gateway": {"name": "hall"},
        "mqtt": {"host": broker.host, "port": broker.tls_port, "tls": {"ca_file": str(ca_file)},
                 "reconnect_max": 2},
        "devices": [DEVICE],
        "sinks": [{"name": "vm", "type": "influx", "url": NOWHERE}],
    }


def test_source_over_tls_receives_readings(tls_broker, pki, make_gateway):
    gw = make_gateway(_tls_source_config(tls_broker, pki.ca))
    gw.start()
    _publish_power(tls_broker, 41)
    assert gw.wait_for(lambda s: s["ingest"]["stored"] >= 1, 15), gw.status()
    assert gw.status()["ingest"]["undecodable"] == {}
    assert gw.stop() == 0


def test_source_with_a_ca_that_did_not_sign_the_broker_is_refused(tls_broker, pki,
                                                                  make_gateway):
    gw = make_gateway(_tls_source_config(tls_broker, pki.stranger_ca))
    gw.start(wait_connected=False)
    assert _log_says(gw, "cannot connect to MQTT broker"), gw.log_text()
    line = next(ln for ln in gw.log_text().splitlines() if "cannot connect to" in ln)
    assert f"{tls_broker.host}:{tls_broker.tls_port}" in line
    assert "ERROR" in line and "certificate was not accepted" in line, line
    assert "mqtt.tls.ca_file" in line, line
    assert gw.running
    assert gw.status()["mqtt"]["connected"] is False
    assert gw.stop() == 0


# -- the upstream broker: TLS and password --------------------------------------------------


class Watcher:
    """A cloud consumer subscribed over TLS with its own user on the upstream broker."""

    def __init__(self, broker: Mosquitto, ca: Path, topic: str) -> None:
        self.messages: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = _client("cloud-consumer")
        self.client.username_pw_set("cloud", "cloud-pw")
        self.client.tls_set(ca_certs=str(ca))
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, m, r, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.tls_port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, json.loads(msg.payload)))

    def powers(self) -> list[float]:
        with self._lock:
            return [m["value"] for _, m in self.messages if m["metric"] == "plug.power"]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_upstream_sink_over_tls_with_password(mosquitto, upstream, pki, make_gateway,
                                               tmp_path):
    password_file = tmp_path / "upstream-password"  # as a systemd credential would be
    password_file.write_text(PASSWORD + "\n")
    watcher = Watcher(upstream, pki.ca, "halls/#")
    try:
        assert watcher.subscribed.wait(10)
        gw = make_gateway({
            "gateway": {"name": "hall"},
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            "devices": [DEVICE],
            "sinks": [{"name": "cloud", "type": "mqtt", "host": "localhost",
                       "port": upstream.tls_port, "username": USER,
                       "password": "${file:" + str(password_file) + "}",
                       "tls": {"ca_file": str(pki.ca)}, "topic": "halls/{gateway}/{device}",
                       "backoff_min": 0.2, "backoff_max": 1}],
        })
        gw.start()
        _publish_power(mosquitto, 42)
        assert wait_until(lambda: watcher.powers() == [42], 20, interval=0.1), (
            watcher.messages, gw.status(), gw.log_text()[-2000:])
        topic, _ = next(m for m in watcher.messages if m[1]["metric"] == "plug.power")
        assert topic == "halls/hall/defib-socket"
        assert gw.wait_for(lambda s: gw.sink("cloud")["delivered"] >= 1, 10)
        assert "connected to upstream broker" in gw.log_text()
        _assert_password_not_shown(gw)
        assert gw.stop() == 0
    finally:
        watcher.close()


@pytest.mark.parametrize("mistake", ["wrong password", "wrong CA"])
def test_upstream_sink_that_is_refused_keeps_readings_and_says_why(mosquitto, upstream, pki,
                                                                  make_gateway, mistake):
    password, ca = PASSWORD, pki.ca
    if mistake == "wrong password":
        password += "-typo"
    else:
        ca = pki.stranger_ca
    gw = make_gateway({
        "gateway": {"name": "hall"},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [DEVICE],
        "sinks": [{"name": "cloud", "type": "mqtt", "host": "localhost",
                   "port": upstream.tls_port, "username": USER, "password": password,
                   "tls": {"ca_file": str(ca)}, "backoff_min": 0.2, "backoff_max": 1}],
    })
    gw.start()
    _publish_power(mosquitto, 43)
    # A refused password is a setting to fix (held); a refused certificate may be a
    # broker's own mistake, retried.
    state = "held" if mistake == "wrong password" else "retrying"
    assert gw.wait_for(lambda s: s["ingest"]["stored"] >= 1
                       and gw.sink("cloud")["state"] == state
                       and gw.sink("cloud")["backlog_rows"] >= 1, 15), gw.status()
    expected = ("refused the connection: Not authorized" if mistake == "wrong password"
                else "certificate was not accepted")
    assert gw.wait_for(lambda s: expected in gw.sink("cloud")["last_error"], 10), gw.status()
    assert f"localhost:{upstream.tls_port}" in gw.sink("cloud")["last_error"]
    assert expected in gw.log_text()
    assert gw.sink("cloud")["delivered"] == 0
    _assert_password_not_shown(gw)
    assert password not in gw.log_text()
    assert gw.stop() == 0
