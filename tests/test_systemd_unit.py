"""The service unit is one systemd accepts (`systemd-analyze verify`, with the gateway's
path pointed at a program that exists here) and is a notify service with a watchdog,
restarted on failure, running as its own user with the serial ports' group."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "systemd" / "edge-gateway.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian's systemd package)")
def test_systemd_accepts_the_unit(tmp_path):
    unit = tmp_path / "edge-gateway.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge-gateway/.venv/bin/gateway",
                                             sys.executable))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


def test_it_is_a_notify_service_with_a_watchdog():
    lines = {line.partition("=")[0]: line.partition("=")[2]
             for line in UNIT.read_text().splitlines() if "=" in line and line[0] != "#"}
    assert lines["Type"] == "notify" and lines["NotifyAccess"] == "main"
    assert int(lines["WatchdogSec"]) >= 150  # longer than ingest may take a commit (120 s)
    assert lines["Restart"] == "on-failure"
    assert lines["User"] == "gateway" and "dialout" in lines["SupplementaryGroups"]
