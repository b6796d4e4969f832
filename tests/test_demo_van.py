"""`gateway demo --site van`: the van's morning through the gateway from its simulated
ELM327 and GPS on pseudo-terminals; the office's copy waits while the van drives and
is all sent once it is parked; the trip is tagged; the check-engine code is told."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_the_van_demo_holds_the_office_copy_until_the_van_is_parked(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--site", "van", "--data-dir", str(tmp_path),
         "--duration", "58", "--refresh", "2"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "sink office [waiting]" in done.stdout, done.stdout[-3000:]
    assert "waiting: vehicle.ignition of elm327 is 1" in done.stdout
    # Parked at the end: the office has had everything, nothing lost on the way.
    last = done.stdout.strip().splitlines()[-1]
    stored = int(last.split("stopped. ")[1].split()[0])
    assert f"delivered: local {stored}, office {stored};" in last, last
    local = lines(tmp_path / "office.jsonl")
    assert len(local) >= stored - 100 > 1000, (len(local), stored)  # gateway.* at the end
    rpm = [r for r in local if r["metric"] == "vehicle.rpm"]
    trips = {r["tags"].get("trip") for r in rpm}
    assert rpm and None not in trips and len(trips) == 2, trips  # out and back
    assert any(r["metric"] == "gps.latitude" and "trip" not in r["tags"] for r in local)
    told = (tmp_path / "notifications.jsonl").read_text()
    assert "check-engine" in told and "trouble code" in told
