"""The simulated van's serial devices on real pseudo-terminals, run on the wall clock,
for tests that read them through a gateway process.

`Van(tmp_path)` builds the simulator's car world with a GPS receiver and an ELM327
adapter, each on a pseudo-terminal with a stable symlink (`gps_link`, `obd_link`);
`start()` drives the simulation in a thread, its time following the real one (so the
fixes carry believable times); `unplug(device)` closes a port as pulling the USB
adapter does, and `plug_in(device)` brings it back on the same link.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from firmware_sim.car.elm327 import Elm327Device
from firmware_sim.car.gps import GpsDevice
from firmware_sim.car.pty import PseudoTerminal
from firmware_sim.car.vehicle import Vehicle
from firmware_sim.devices.base import perform_action
from firmware_sim.engine import Simulation


class Van:
    def __init__(self, folder: Path, seed: int = 7, baud: int | None = None,
                 **world: Any) -> None:
        self.gps_link = folder / "gps"
        self.obd_link = folder / "obd"
        self.sim = Simulation(time.time(), seed=seed, timezone="Europe/London")
        self.vehicle = Vehicle(self.sim, {"fuel": 64, "ambient": 8, **world})
        self.gps = GpsDevice(self.sim, {"id": "gps", "kind": "gps", "fix_after": 0,
                                        "talker": "GN", "link": str(self.gps_link)},
                             self.vehicle)
        self.baud = baud
        self.obd = Elm327Device(self.sim, self._obd_spec(), self.vehicle)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self.vehicle.start()
        self.gps.start(None)
        self.obd.start(None)
        self._thread = threading.Thread(target=self._drive, name="van-sim", daemon=True)
        self._thread.start()

    def _drive(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.sim.run_until(time.time())
            self._stop.wait(0.05)

    def do(self, action: str, **kw: Any) -> None:
        """A scenario step now: ignition-on, drive, stop, ignition-off, dtc (code=...)."""
        with self._lock:
            perform_action(self.vehicle, "the van", action, kw)

    def unplug(self, device: str) -> None:
        if device == "gps":
            assert self.gps.port is not None
            self.gps.port.close()
        else:
            self.obd.stop()  # the adapter loses power with the socket

    def plug_in(self, device: str) -> None:
        if device == "gps":
            self.gps.port = PseudoTerminal(str(self.gps_link))
        else:  # a fresh adapter: its settings back to the chip's defaults
            self.obd = Elm327Device(self.sim, self._obd_spec(), self.vehicle)
            self.obd.start(None)

    def _obd_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"id": "elm327", "kind": "elm327", "link": str(self.obd_link)}
        if self.baud:
            spec["baud"] = self.baud
        return spec

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.gps.stop()
        self.obd.stop()
