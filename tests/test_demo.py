"""`gateway demo`: on its own (embedded broker), it shows every simulated device within
seconds, writes their readings to the file sink, and stops cleanly on Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from firmware_sim.scenario import load_scenario
from firmware_sim.site import gateway_devices
from gateway.demo.run import FRAME_RULE


def demo_devices() -> list[str]:
    scenario = load_scenario("demo-day")
    return [d["id"] for d in gateway_devices(scenario.site, scenario.devices)]


class Output:
    """Collects a child's stdout on a thread, so the test can wait for text."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.text = ""
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self.lock:
                self.text += line

    def last_frame(self) -> str:
        with self.lock:
            frames = [f for f in self.text.split(FRAME_RULE) if "DEVICE" in f]
        return frames[-1] if frames else ""


def test_demo_shows_every_device_and_stops_on_sigint(tmp_path: Path) -> None:
    devices = demo_devices()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--data-dir", str(tmp_path), "--refresh", "1",
         "--speed", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = Output(proc)
    try:
        deadline = time.monotonic() + 30
        frame = ""
        while time.monotonic() < deadline:
            frame = out.last_frame()
            rows = {line.split()[0]: line for line in frame.splitlines() if line.strip()}
            # A device's first message may be its switch state; its telemetry follows.
            # The meter's Glow has no last will: its state is unknown ("?"), its values show.
            if all(d in rows and (" online " in rows[d] or d == "hall-meter")
                   and "never" not in rows[d] for d in devices) \
                    and "power" in rows["defib-socket"] and "temp" in rows["heating"] \
                    and "import" in rows["hall-meter"]:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"not every device shown online with values:\n{out.text[-3000:]}")
        assert "undecodable 0" in frame
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out.thread.join(5)
    assert code == 0, out.text[-3000:]
    assert "stopped." in out.text and "Traceback" not in out.text
    readings = [json.loads(line) for line in (tmp_path / "readings.jsonl").read_text().splitlines()]
    assert {r["tags"]["device"] for r in readings} >= set(devices)
