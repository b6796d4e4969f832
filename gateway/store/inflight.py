"""Which stored rows a sink is sending right now, so housekeeping leaves them alone.

A forwarder reads a batch, sends it, then moves its cursor. Were compaction to
fold rows of that batch into a row with a higher id, the sink would receive
those readings twice; were eviction to delete them, they would be counted lost
and delivered too. So a forwarder claims the rows after its cursor *before*
it reads them (`reading`), narrows the claim to what it read (`narrow`), and
drops it once the cursor has moved (`release`); housekeeping holds the same
lock for each of its short transactions and skips claimed rows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_OPEN_END = 2**62


class InFlight:
    """Claims by sink: rows with after < id <= upto are being sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._claims: dict[str, tuple[int, int]] = {}
        #: bumped when housekeeping starts deleting or folding rows a sink may still wait
        #: for (eviction, max_age, compaction) and again when it is done (odd meanwhile):
        #: a backlog kept running is counted again whenever it changed
        self.reshaped = 0

    @contextmanager
    def reading(self, sink: str, after: int) -> Iterator[None]:
        """Claim everything after `after` while the batch is read (narrow it afterwards)."""
        with self.lock:
            self._claims[sink] = (after, _OPEN_END)
            yield

    def narrow(self, sink: str, after: int, upto: int) -> None:
        with self.lock:
            if upto <= after:
                self._claims.pop(sink, None)
            else:
                self._claims[sink] = (after, upto)

    def release(self, sink: str) -> None:
        with self.lock:
            self._claims.pop(sink, None)

    def claims(self) -> list[tuple[int, int]]:
        """The claimed (after, upto] ranges; call with `lock` held."""
        return list(self._claims.values())

    @staticmethod
    def claimed(row_id: int, ranges: list[tuple[int, int]]) -> bool:
        return any(a < row_id <= b for a, b in ranges)
