"""What a local check is, for the built-in ones and for a user's own.

A check is a small class whose `check()` measures something and says what it found:

    from gateway.sources.check import Check

    class RainTank(Check):
        \"\"\"The rain tank's level, from the ultrasonic sensor's file.\"\"\"

        def check(self) -> None:
            depth = float(open(self.options["path"]).read())
            self.gauge("tank.level", 100 * (1 - depth / self.options["depth"]), unit="%")

`self.gauge(metric, value, unit="", tags=None)` and `self.count(...)` add a reading;
`self.options` holds the check's `options:` from the config; `self.name` its name. The
gateway runs `check()` every `min_collection_interval` in a thread of its own, gives
up on a run that takes longer than `timeout`, and counts a run that raises: neither
stops the gateway or holds up anything else. Keep a check quick and let it raise
when it cannot measure; do not catch everything and report zeros.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.clock import SYSTEM, Clock


class Check:
    def __init__(self, name: str, options: Mapping[str, Any], clock: Clock = SYSTEM) -> None:
        self.name = name
        self.options = options
        #: the gateway's clock (now, monotonic), for a check that times something
        self.clock = clock
        self._found: list[dict[str, Any]] = []

    def check(self) -> None:
        """Measure, and call gauge()/count() for what was found."""
        raise NotImplementedError

    def gauge(self, metric: str, value: float, unit: str = "",
              tags: Mapping[str, str] | None = None) -> None:
        self._add(metric, value, "gauge", unit, tags)

    def count(self, metric: str, value: float, unit: str = "",
              tags: Mapping[str, str] | None = None) -> None:
        self._add(metric, value, "count", unit, tags)

    def _add(self, metric: str, value: float, mtype: str, unit: str,
             tags: Mapping[str, str] | None) -> None:
        self._found.append({"metric": metric, "value": value, "type": mtype, "unit": unit,
                            "tags": dict(tags or {})})

    def run(self) -> list[dict[str, Any]]:
        """One run: what `check()` found."""
        self._found = []
        self.check()
        found, self._found = self._found, []
        return found
