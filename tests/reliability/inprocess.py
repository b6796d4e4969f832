"""The gateway run inside the test process, on a clock the test controls.

For what a child process cannot show quickly: a week of outage at thousands of
times real speed, or a clock that jumps. Everything else is real (Mosquitto,
VictoriaMetrics, the store on disk); `Gateway` is the same class `gateway run`
uses.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from gateway.app.gateway import Gateway
from gateway.clock import Clock
from gateway.config.load import parse_config


class TestClock(Clock):
    """Simulated UTC seconds: runs `speed` times real time from `start`; can jump.
    Intervals and timeouts (monotonic) stay real."""

    __test__ = False

    def __init__(self, start: float, speed: float = 1.0) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._base = start
        self._real = time.monotonic()
        self._speed = speed

    def now(self) -> float:
        with self._lock:
            return self._base + (time.monotonic() - self._real) * self._speed

    def set(self, *, speed: float | None = None, jump: float = 0.0) -> None:
        """Change speed from now on, and/or step the clock by `jump` seconds."""
        with self._lock:
            now = time.monotonic()
            self._base += (now - self._real) * self._speed + jump
            self._real = now
            if speed is not None:
                self._speed = speed


class GatewayThread:
    """`Gateway(config, clock)` running on its own event loop in a thread."""

    def __init__(self, config: dict[str, Any], workdir: Path, clock: TestClock) -> None:
        import json

        config.setdefault("gateway", {}).setdefault("data_dir", str(workdir / "data"))
        config["gateway"].setdefault("http", {"enabled": False})
        self.config = parse_config(json.dumps(config), str(workdir / "gateway.yaml"))
        self.gateway = Gateway(self.config, workdir, clock)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self.gateway.run())
        except BaseException as exc:  # noqa: BLE001 - reported to the test by stop()
            self.error = exc

    def start(self, timeout: float = 20.0) -> None:
        self._thread.start()
        if not self.gateway.source.subscribed.wait(timeout):
            raise RuntimeError("the gateway did not connect to the broker and subscribe")

    def status(self) -> dict[str, Any]:
        return self.gateway.status()

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate(self.status()):
                    return True
            except (KeyError, IndexError, TypeError):
                pass
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self.gateway.request_stop)
        self._thread.join(60)
        if self.error is not None:
            raise self.error
