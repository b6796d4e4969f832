"""`gateway notify test MEMBER` sends a test message on each of that person's channels and
says which worked, naming channels by number and service only (their URLs hold tokens)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from programs.webhook import Webhook

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tok-9f8e7d6c5b4a"


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_each_channel_is_tried_and_reported(tmp_path):
    hook = Webhook()
    hook.start()
    hook.status["/gone"] = 404
    config = tmp_path / "gateway.yaml"
    config.write_text(json.dumps({
        "gateway": {"name": "hall"},
        "people": [{"name": "ann", "channels": [hook.url(f"gone?token={TOKEN}"),
                                                hook.url(f"phone/{TOKEN}")]}]}))
    try:
        run = gateway("notify", "test", "ann", "--config", str(config))
    finally:
        hook.stop()
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("  1 json: FAILED: ") and "404" in lines[0], lines
    assert lines[1] == "  2 json: delivered"
    assert lines[2].startswith("ann: 1 of 2 channel(s) delivered")
    assert hook.messages(f"/phone/{TOKEN}")[0].startswith("This is a test of ann's channels")
    assert TOKEN not in run.stdout + run.stderr

    unknown = gateway("notify", "test", "bob", "--config", str(config))
    assert unknown.returncode == 1 and "no person 'bob' in people: (ann)" in unknown.stderr
