"""Rate-limited logging: a flood of bad payloads must not flood the journal.

A key logs at most once per `interval`; what it held back is told either on its
next line ("(41 more like this in the last 60s)") or, when nothing more comes,
by `flush()`, which the ingest thread calls between batches: a flood that
stops is never left looking like one line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway.clock import SYSTEM


class Throttled:
    """Logs a message at most once per `interval` seconds per key, counting the rest."""

    def __init__(self, logger: logging.Logger, interval: float = 60.0,
                 clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        #: per key: how many were held back since its last line, and the last of them
        self._suppressed: dict[str, tuple[int, int, str]] = {}

    def log(self, level: int, key: str, message: str, exc_info: bool = False) -> bool:
        """Log `message` unless `key` logged within `interval`; True if it was logged."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            held = self._suppressed.get(key)
            self._suppressed[key] = ((held[0] if held else 0) + 1, level, message)
            return False
        if len(self._last) > 10000:
            self._last.clear()
        self._last[key] = now
        held = self._suppressed.pop(key, None)
        if held:
            message += f" ({held[0]} more like this in the last {self.interval:.0f}s)"
        self.logger.log(level, message, exc_info=exc_info)
        return True

    def due_in(self) -> float:
        """Seconds until `flush` has a held-back count to tell (inf when none is held):
        the ingest thread waits no longer than this when idle."""
        if not self._suppressed:
            return float("inf")
        now = self.clock()
        return max(0.0, min(self._last.get(key, now) + self.interval - now
                            for key in self._suppressed))

    def flush(self, force: bool = False) -> int:
        """Tell how many were held back for each key whose interval has passed (every
        key with `force`, e.g. when stopping). Returns the number of lines logged;
        cheap when nothing was held back.
        """
        if not self._suppressed:
            return 0
        now = self.clock()
        logged = 0
        for key, (count, level, message) in list(self._suppressed.items()):
            last = self._last.get(key)
            if not force and last is not None and now - last < self.interval:
                continue
            del self._suppressed[key]
            # This line opens a new interval: a flood that resumes is held back again.
            self._last[key] = now
            elapsed = now - last if last is not None else self.interval
            self.logger.log(level, f"{count} more like this in the last {elapsed:.0f}s, "
                                   f"the last: {message}")
            logged += 1
        return logged
