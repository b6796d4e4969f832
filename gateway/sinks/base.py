"""What every sink is: one wire format, one destination, and what it confirms.

A sink gets a batch of stored rows and answers with an `Outcome`: how many
leading rows are finished (delivered, or refused for good and dead-lettered),
or why it must wait or stop. It knows nothing of sources, profiles or the store.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.clock import SYSTEM, Clock
from gateway.model import Row


@dataclass
class Outcome:
    """The result of one `send`.

    done      leading rows that need no more work (cursor moves past them)
    delivered of those, how many the destination confirmed
    dead      (row, reason) pairs among `done` refused for good: kept in dead_letters
    dropped   reason -> count of rows among `done` given up by policy (counted, not kept)
    merged    rows combined into another point before sending (e.g. same second)
    retry_after  wait at least this long before retrying (transient failure)
    hold      the destination refuses the requests themselves, whatever they hold (a
              wrong URL or path, a refused key or password): a configuration problem no
              retry will fix. Nothing is dead-lettered; the readings wait in the store
              and the sink is shown `held` with the destination's reason, loudly
    error     what went wrong, for logs and status (never holds secrets)
    refusal   the destination's words for the rows in `dead`, for the log
    """

    done: int = 0
    delivered: int = 0
    dead: list[tuple[Row, str]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    merged: int = 0
    retry_after: float | None = None
    hold: bool = False
    error: str = ""
    refusal: str = ""

    @classmethod
    def failed(cls, error: str, retry_after: float | None = None) -> Outcome:
        return cls(error=error, retry_after=retry_after)

    @classmethod
    def held(cls, error: str) -> Outcome:
        return cls(error=error, hold=True)


#: HTTP answers that refuse the request itself, not the readings in it: a wrong URL or
#: path (404, 405, 410), refused credentials (401, 403), a wrong content type (415)
REFUSES_REQUEST = frozenset({401, 403, 404, 405, 406, 410, 411, 415})


@dataclass(frozen=True)
class SinkContext:
    """What a sink may need from the gateway that builds it."""

    gateway_name: str
    clock: Clock
    #: the gateway's data_dir: where a sink keeps files of its own
    data_dir: Path


class Sink(abc.ABC):
    """One destination. Subclasses say what they confirm in `confirms`."""

    #: what counts as delivered, in words shown by `gateway status`
    confirms: str = ""

    def __init__(self, name: str, clock: Clock = SYSTEM) -> None:
        self.name = name
        self.clock = clock

    @classmethod
    def build(cls, config: Any, context: SinkContext) -> Sink:
        """The sink for its settings (gateway.sinks.registry builds sinks by this)."""
        return cls(config, context.clock)  # type: ignore[call-arg]

    async def open(self) -> None:
        """Prepare connections. Must not raise for an unreachable destination."""

    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def send(self, rows: Sequence[Row]) -> Outcome:
        """Deliver rows (in id order). Must not raise for destination failures."""


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Parse an HTTP Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None
