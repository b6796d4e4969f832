"""The gateway itself as a child process, as systemd would run it: `gateway run --config`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .ports import LOOPBACK, free_port
from .process import ManagedProcess

ROOT = Path(__file__).resolve().parents[2]


class GatewayProcess(ManagedProcess):
    """Writes a config (JSON is YAML) and runs `python -m gateway run` on it.

    `config` is the whole config as a dict; `http.port` and `data_dir` are filled
    in when absent. Ready when it is connected to its broker (or at once, with
    `start(wait_connected=False)`). `status()` reads /status; `cli()` runs other
    subcommands. Its output goes to `gateway.log` in the work directory.
    """

    name = "gateway"
    stop_timeout = 30.0

    def __init__(self, workdir: Path, config: dict[str, Any],
                 env: dict[str, str] | None = None) -> None:
        gw = config.setdefault("gateway", {})
        gw.setdefault("name", "test-gw")
        gw.setdefault("data_dir", str(Path(workdir) / "data"))
        http = gw.setdefault("http", {})
        http.setdefault("port", free_port())
        super().__init__(workdir, int(http["port"]))
        self.config = config
        self.http_port = int(http["port"])
        self.config_path = self.workdir / "gateway.yaml"
        self.config_path.write_text(json.dumps(config, indent=2))
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.output_path = self.log_path = self.workdir / "gateway.log"
        self._wait_connected = True

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gateway", "run", "--config", str(self.config_path)]

    def environment(self) -> dict[str, str]:
        return self.env

    def is_ready(self) -> bool:
        if not self._wait_connected:
            return True
        # Subscribed, not only connected: on a new session a message published before
        # the broker acknowledged the subscriptions never reaches the gateway.
        status = self.status()
        return bool(status and status["mqtt"].get("subscribed"))

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self._proc

    @property
    def data_dir(self) -> Path:
        return Path(self.config["gateway"]["data_dir"])

    def start(self, wait_connected: bool = True, timeout: float = 20.0) -> None:
        self._wait_connected = wait_connected
        super().start(timeout)

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM, as systemd stops it; returns the exit code (0 if it was not running)."""
        code = super().stop(timeout)
        return 0 if code is None else code

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
