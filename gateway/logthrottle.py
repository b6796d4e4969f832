"""Rate-limited logging: a flood of bad payloads must not flood the journal."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Throttled:
    """Logs a message at most once per `interval` seconds per key, counting the rest."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, key: str, message: str) -> bool:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        if len(self._last) > 10000:
            self._last.clear()
        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        if skipped:
            message += f" ({skipped} more like this in the last {self.interval:.0f}s)"
        self.logger.log(level, message)
        return True
