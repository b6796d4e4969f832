"""Under systemd, the gateway's log lines reach the journal with their priority: each
line starts `<N>` (journald's prefix: 6 info, 4 warning, 3 error) and carries no time
of its own. Elsewhere (a terminal, a file), lines keep their time and level words.

A gateway process whose stderr is a file standing for the journal's stream (systemd
sets JOURNAL_STREAM to that stream's device and inode); Mosquitto.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from programs.ports import free_port

ROOT = Path(__file__).resolve().parents[1]


def run_briefly(tmp_path: Path, mosquitto, journal: bool) -> str:
    config = tmp_path / "gateway.yaml"
    config.write_text(json.dumps({
        "gateway": {"name": "hall", "data_dir": str(tmp_path / "data"),
                    "http": {"port": free_port()}},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        # nothing listens there: warnings as it retries
        "sinks": [{"name": "vm", "type": "influx", "url": f"http://127.0.0.1:{free_port()}",
                   "backoff_min": 0.2, "backoff_max": 0.5}]}))
    log = tmp_path / "stderr.txt"
    with log.open("wb") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("JOURNAL_STREAM", None)
        if journal:
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config",
                                 str(config)], stderr=err, stdout=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while "sink vm:" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)  # until it has said it runs and the sink has warned
        proc.terminate()
        proc.wait(30)
    return log.read_text()


def test_lines_carry_their_priority_for_the_journal(tmp_path, mosquitto):
    text = run_briefly(tmp_path, mosquitto, journal=True)
    lines = text.splitlines()
    assert lines and all(re.match(r"^<[2-7]>", line) for line in lines), text[:2000]
    assert any(line.startswith("<6>gateway: gateway hall") for line in lines), text[:2000]
    assert any(line.startswith("<4>gateway.forward: sink vm:") for line in lines), text[:2000]
    assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", text)  # the journal has the time


def test_elsewhere_lines_keep_their_time_and_level(tmp_path, mosquitto):
    text = run_briefly(tmp_path, mosquitto, journal=False)
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ WARNING gateway.forward: sink vm:",
                     text, re.M), text[:2000]
    assert "<4>" not in text
