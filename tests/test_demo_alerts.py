"""`gateway demo` tells its committee: the defibrillator socket switched off in the
simulated hall raises an alert in the live view and a notice in the demo's own
channel (notifications.jsonl), with no account anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_the_demo_shows_the_defibrillator_alert_and_records_the_notice(tmp_path: Path):
    # 20 s of demo for 2.5 s of simulated morning: on a loaded machine the simulator can
    # run well behind its 3,600 x, and the socket goes off 2 h 30 into the scenario.
    run = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--scenario", "defib-socket-off",
         "--speed", "3600", "--duration", "20", "--refresh", "2", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=90, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # The open alerts line lists every open alert (the urn may be on too, at this speed)
    assert "defib-power on device:defib-socket ALERT" in run.stdout, run.stdout[-3000:]
    assert "told: [ALERT] defib-power on device:defib-socket" in run.stdout
    notices = [json.loads(line) for line in
               (tmp_path / "notifications.jsonl").read_text().splitlines()]
    defib = [n for n in notices if n["title"] == "[ALERT] defib-power on device:defib-socket"]
    assert len(defib) == 1, notices
    assert defib[0]["message"].startswith("The defibrillator socket has had no power for")
    assert "the committee was told" in run.stdout and "Traceback" not in run.stdout
