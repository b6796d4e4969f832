"""A vehicle's trips, as a tag on its readings.

A trip begins with the ignition device's `vehicle.ignition` reading 1 and ends with its
next 0 (the ELM327 source says 1 once an ECU answers and 0 while none does). Every
reading of the trip's devices in between — the engine's, the GPS's — gets the tag
`trip:<local time it began>` (2026-12-02T10:48:15), so a van's whole trip can be
charted, or summed, once it reaches the depot. Readings are tagged in the order
ingest takes them, before they are stored. The trip under way is kept in a small
file beside the store, so a gateway restarted mid-trip carries on with the same one.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from gateway.clock import Clock
from gateway.model import Reading

log = logging.getLogger("gateway.trips")

STATE_FILE = "trip.json"
IGNITION = "vehicle.ignition"


class Trips:
    def __init__(self, ignition: str, devices: Iterable[str], data_dir: Path,
                 clock: Clock) -> None:
        self.ignition = ignition
        self.devices = frozenset(devices)  # empty: every device
        self.path = data_dir / STATE_FILE
        self.clock = clock
        self.current: str | None = None
        try:
            self.current = json.loads(self.path.read_text()).get("trip")
        except (OSError, ValueError, AttributeError):
            self.current = None
        if self.current:
            log.info("trip %s under way before the restart: carrying on with it", self.current)

    def tag(self, readings: list[Reading]) -> None:
        """Tag `readings` (one message's) with the trip under way, starting or ending it
        where the ignition says so."""
        for r in readings:
            device = r.tags.get("device")
            if device == self.ignition and r.metric == IGNITION:
                if r.value >= 0.5 and self.current is None:
                    self._begin(r.ts)
                elif r.value < 0.5 and self.current is not None:
                    r.tags = {**r.tags, "trip": self.current}  # the trip's last reading
                    self._end()
                    continue
            if self.current is not None and (not self.devices or device in self.devices):
                r.tags = {**r.tags, "trip": self.current}

    def _begin(self, ts: float) -> None:
        self.current = self.clock.local(ts).strftime("%Y-%m-%dT%H:%M:%S")
        log.info("trip %s begins (%s: ignition on)", self.current, self.ignition)
        self._save()

    def _end(self) -> None:
        log.info("trip %s ends (%s: ignition off)", self.current, self.ignition)
        self.current = None
        self._save()

    def _save(self) -> None:
        try:
            part = self.path.with_suffix(".part")
            part.write_text(json.dumps({"trip": self.current}))
            os.replace(part, self.path)
        except OSError as exc:  # readings still get their tags; a restart may begin anew
            log.warning("trip: cannot keep the trip under way in %s: %s", self.path,
                        exc.strerror)
