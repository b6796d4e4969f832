"""Every command survives a reader that goes away (`| head -1`) or no stdout at all.

`gateway check … | head -1` used to end in a BrokenPipeError traceback. Here each
command writes into a pipe whose reading end is already closed (every write
fails with EPIPE, as after `head` exits), and into a closed file descriptor 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from paho.mqtt import publish

ROOT = Path(__file__).resolve().parents[1]
HALL = ROOT / "deploy" / "examples" / "hall.yaml"
SENSOR = '{"ENERGY":{"Power":38,"Voltage":238,"Current":0.2,"Total":1.5}}'
DECODE = ["decode", "--profile", "tasmota", "--param", "topic=p", "--topic", "tele/p/SENSOR",
          "--payload", SENSOR]


def run_closed(args: list[str], how: str, cwd: Path = ROOT,
               timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run with stdout a pipe nobody reads (`how="pipe"`) or with fd 1 closed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GATEWAY_CONFIG": str(HALL)}
    if how == "pipe":
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first write
        try:
            return subprocess.run(args, stdout=write_end, stderr=subprocess.PIPE, env=env,
                                  cwd=cwd, timeout=timeout, check=False)
        finally:
            os.close(write_end)
    return subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                          cwd=cwd, timeout=timeout, check=False,
                          preexec_fn=lambda: os.close(1))


def gateway(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway", *args]


COMMANDS = {
    "help": gateway("--help"),
    "version": gateway("--version"),
    "check": gateway("check", "--config", str(HALL)),
    "check-default-config": gateway("check"),
    "decode": gateway(*DECODE),
    "decode-help": gateway("decode", "--help"),
    "status": gateway("status", "--config", str(HALL)),
    "status-json": gateway("status", "--json"),
    "store-help": gateway("store", "--help"),
    "sim-list": [sys.executable, "-m", "firmware_sim.cli", "list"],
    "sim-config": [sys.executable, "-m", "firmware_sim.cli", "config", "--scenario",
                   "demo-day"],
}


@pytest.mark.parametrize("how", ["pipe", "closed"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_no_traceback_when_nobody_reads(name: str, how: str) -> None:
    done = run_closed(COMMANDS[name], how)
    err = done.stderr.decode(errors="replace")
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert "Broken pipe" not in err, err
    # Status exits 3 (not running), like a normal run; the rest as they would on a terminal.
    code = {"status": 3, "status-json": 3}.get(name, 0)
    # Into a pipe it may also end as a shell shows for SIGPIPE.
    expected = {code, 141} if how == "pipe" else {code}
    assert done.returncode in expected, (done.returncode, err)


@pytest.mark.parametrize("how", ["pipe", "closed"])
def test_store_commands_with_nobody_reading(tmp_path: Path, mosquitto, make_gateway,
                                            how: str) -> None:
    gw = make_gateway({
        "gateway": {"name": "hall"},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "plug", "profile": "tasmota", "topic": "p"}],
        "sinks": [{"name": "file", "type": "file", "path": str(tmp_path / "out.jsonl")}],
    })
    gw.start()
    for _ in range(3):
        publish.single("tele/p/SENSOR", SENSOR, qos=1, hostname=mosquitto.host,
                       port=mosquitto.port)
    assert gw.wait_for(lambda s: s["ingest"]["stored"] >= 12, 20), gw.status()
    config = str(gw.config_path)
    for args in (["status", "--config", config], ["store", "stats", "--config", config],
                 ["store", "check", "--config", config],
                 ["store", "export", "--config", config]):
        done = run_closed(gateway(*args), how)
        err = done.stderr.decode(errors="replace")
        assert "Traceback" not in err and "Exception ignored" not in err, (args, err)
        assert done.returncode in (0, 1, 141), (args, done.returncode, err)


def test_a_payload_that_is_not_utf8_is_decoded_as_such_not_a_traceback() -> None:
    raw = b'{"ENERGY":{"Power":\xff}}'
    # argv carries the bytes as given; Python hands them over escaped (surrogateescape).
    done = subprocess.run(gateway("decode", "--profile", "tasmota", "--param", "topic=p",
                                  "--topic", "tele/p/SENSOR", "--payload",
                                  os.fsdecode(raw)), capture_output=True, timeout=60,
                          check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "Traceback" not in err
    assert err.startswith("not_utf8: payload on 'tele/p/SENSOR' is not UTF-8 (byte 19)"), err
