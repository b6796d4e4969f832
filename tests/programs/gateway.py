"""The gateway itself as a child process, as systemd would run it: `gateway run --config`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .ports import LOOPBACK, free_port
from .process import _die_with_parent

ROOT = Path(__file__).resolve().parents[2]


class GatewayProcess:
    """Writes a config (JSON is YAML) and runs `python -m gateway run` on it.

    `config` is the whole config as a dict; `http.port` and `data_dir` are filled
    in when absent. `status()` reads /status; `cli()` runs other subcommands.
    """

    def __init__(self, workdir: Path, config: dict[str, Any],
                 env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        gw = config.setdefault("gateway", {})
        gw.setdefault("name", "test-gw")
        gw.setdefault("data_dir", str(self.workdir / "data"))
        http = gw.setdefault("http", {})
        http.setdefault("port", free_port())
        self.config = config
        self.http_port = int(http["port"])
        self.config_path = self.workdir / "gateway.yaml"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.log_path = self.workdir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def data_dir(self) -> Path:
        return Path(self.config["gateway"]["data_dir"])

    def start(self, wait_connected: bool = True, timeout: float = 20.0) -> None:
        log = self.log_path.open("ab")
        in_main_thread = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(self.config_path)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            # Killed with the test run, as the other programs are: a leftover gateway
            # would reconnect with the same client id and push the next test's off.
            preexec_fn=_die_with_parent if in_main_thread else None)
        self.starts += 1
        if wait_connected:
            ok = self.wait_for(lambda s: s["mqtt"]["connected"], timeout)
            if not ok:
                raise RuntimeError(f"gateway did not connect within {timeout} s:\n"
                                   f"{self.log_text()[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as systemd stops it; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash or a power cut of the process, no clean-up at all."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict[str, Any] | None:
        try:
            url = f"http://{LOOPBACK}:{self.http_port}/status"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return json.load(resp)
        except (OSError, ValueError):
            return None

    def metrics_text(self) -> str:
        url = f"http://{LOOPBACK}:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read().decode()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                 interval: float = 0.1) -> bool:
        """Poll /status until predicate(status) is true; False on timeout or exit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            s = self.status()
            if s is not None:
                try:
                    if predicate(s):
                        return True
                except (KeyError, IndexError, TypeError):
                    pass
            time.sleep(interval)
        return False

    def sink(self, name: str) -> dict[str, Any]:
        s = self.status() or {}
        return next(k for k in s.get("sinks", []) if k["name"] == name)

    def cli(self, *args: str, input: str | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run `python -m gateway <args>` and capture its output."""
        return subprocess.run([sys.executable, "-m", "gateway", *args], env=self.env,
                              capture_output=True, text=True, input=input, timeout=timeout,
                              cwd=self.workdir)

    def wait_for_log(self, text: str, timeout: float) -> bool:
        """Wait until the gateway's log holds `text` (for a gateway without /status)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_text():
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        if self.running:
            try:
                self.stop(10)
            except subprocess.TimeoutExpired:
                self.kill()
