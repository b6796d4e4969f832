"""Run as a `Type=notify` service, the gateway tells systemd it is ready once it serves,
what it is doing (the `Status:` line of systemctl status), that it is alive at half
`WatchdogSec=`, and that it stops; and it stops saying it is alive while ingest is
stuck in a commit, so systemd restarts a wedged gateway.

A notify socket bound here, as systemd's is; Mosquitto; a gateway process (and one in
this process, to wedge its ingest on purpose).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from reliability.inprocess import GatewayThread, TestClock


class NotifySocket:
    """What systemd would receive on NOTIFY_SOCKET, datagram by datagram."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.got: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.got.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def wait_for(self, text: str, timeout: float, after: int = 0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in g for g in self.got[after:]):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def notify(tmp_path):
    n = NotifySocket(tmp_path / "notify.sock")
    yield n
    n.close()


def config(mosquitto) -> dict:
    return {"gateway": {"name": "hall", "self_metrics_interval": 3600},
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            "store": {"commit_interval": 0.05},
            "devices": [{"id": "plug1", "profile": "tasmota", "topic": "plug1"}],
            "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}]}


def test_ready_status_watchdog_and_stopping(mosquitto, make_gateway, notify):
    gw = make_gateway(config(mosquitto), env={"NOTIFY_SOCKET": str(notify.path),
                                              "WATCHDOG_USEC": "4000000"})
    gw.start()
    assert notify.wait_for("READY=1", 10), notify.got
    ready = next(g for g in notify.got if "READY=1" in g)
    assert "STATUS=running: " in ready and "backlog local" in ready, ready
    first = len(notify.got)
    assert notify.wait_for("WATCHDOG=1", 6, after=first), notify.got
    time.sleep(4.5)
    pings = sum("WATCHDOG=1" in g for g in notify.got)
    assert pings >= 2, notify.got
    gw.stop()
    assert notify.wait_for("STOPPING=1", 5), notify.got[-5:]


def test_no_ping_while_ingest_is_stuck_in_a_commit(mosquitto, publisher, notify, tmp_path,
                                                  monkeypatch):
    import gateway.app.gateway as app

    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setattr(app, "STUCK", 1.0)
    gw = GatewayThread(config(mosquitto), tmp_path, TestClock(time.time()))
    release = threading.Event()
    finish = gw.gateway.ingest._finish

    def stuck_commit(outbox, batch):  # a commit that never returns (a hung disk, say)
        release.wait(30)
        return finish(outbox, batch)

    monkeypatch.setattr(gw.gateway.ingest, "_finish", stuck_commit)
    gw.start()
    try:
        assert notify.wait_for("WATCHDOG=1", 6), notify.got
        publisher.publish("tele/plug1/SENSOR", '{"ENERGY":{"Power":40}}',
                          qos=1).wait_for_publish(5)
        time.sleep(2.0)  # past STUCK: the pings have stopped
        quiet_from = len(notify.got)
        time.sleep(3.0)
        assert not any("WATCHDOG=1" in g for g in notify.got[quiet_from:]), notify.got
        release.set()
        assert notify.wait_for("WATCHDOG=1", 6, after=quiet_from), notify.got
    finally:
        release.set()
        gw.stop()
