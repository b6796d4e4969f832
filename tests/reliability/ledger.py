"""The closing count of a reliability test: what was published, accepted, delivered,
duplicated and dropped (by reason), and what is missing beyond the counted drops.

Readings are compared as :data:`programs.plugs.Key` tuples (series, labels,
value), each test's publishers making every value findable. A reading the sink
holds inside a compacted point counts as delivered through `covered`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from programs.plugs import Key, difference


@dataclass
class Ledger:
    test: str
    published: int  # readings in the messages the publishers sent
    accepted: int  # readings in the messages the broker acknowledged (the promise)
    delivered: int  # accepted readings the sink holds (each counted once)
    duplicated: int  # extra copies the sink holds (at-least-once)
    dropped: dict[str, int] = field(default_factory=dict)  # the gateway's own count, by reason
    unexpected: int = 0  # readings the sink holds that nobody published
    detail: str = ""  # what is missing or extra, when anything is
    own: int = 0  # the gateway's own readings (self-metrics), which drops may include

    @property
    def missing(self) -> int:
        return self.accepted - self.delivered

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def __str__(self) -> str:
        drops = ", ".join(f"{r} {n}" for r, n in sorted(self.dropped.items())) or "none"
        own = f" (the gateway's own readings: {self.own})" if self.own else ""
        return (f"[{self.test}] published {self.published}, accepted {self.accepted}, "
                f"delivered {self.delivered}, duplicated {self.duplicated}, dropped: {drops}"
                f"{own}; missing {self.missing}, unexpected {self.unexpected}")

    def check(self, exact: bool = True) -> None:
        """Nothing is missing beyond what the gateway counted as dropped.

        exact: the readings missing are exactly the counted drops (no more, no fewer;
        the drops may also hold some of the gateway's `own` readings, the self-metrics,
        which are stored at low priority and so evicted first);
        otherwise the counted drops must at least cover what is missing.
        """
        print(self)
        assert self.unexpected == 0, f"{self}\n{self.detail}"
        if exact:
            assert self.missing <= self.dropped_total <= self.missing + self.own, \
                f"{self}\n{self.detail}"
        else:
            assert self.missing <= self.dropped_total, f"{self}\n{self.detail}"


def ledger(test: str, published: int, expected: Counter[Key], got: Counter[Key],
           dropped: Mapping[str, int] | None = None,
           covered: Counter[Key] | None = None) -> Ledger:
    """Compare what the sink holds (`got`) with what was accepted (`expected`).

    `covered`: accepted readings held inside compacted points (not as themselves).
    """
    covered = covered or Counter()
    held = got + covered
    delivered = sum(min(n, held[k]) for k, n in expected.items())
    duplicated = sum(max(0, held[k] - n) for k, n in expected.items())
    unexpected = sum(n for k, n in got.items() if k not in expected)
    missing_or_extra = difference(expected, held) if (expected - held or unexpected) else ""
    return Ledger(test, published, sum(expected.values()), delivered, duplicated,
                  dict(dropped or {}), unexpected, missing_or_extra)


def sink_drops(status: Mapping[str, Any], sink: str) -> dict[str, int]:
    """The gateway's count of readings given up for `sink`, by reason (from /status or
    `gateway status --json`)."""
    out: dict[str, int] = {}
    for key, n in (status.get("losses_by_priority") or {}).items():
        name, reason, _ = key.split("/", 2)
        if name == sink:
            out[reason] = out.get(reason, 0) + int(n)
    return out


def fleet_ledger(test: str, fleet: Any, got: Counter[Key], gateway: Any, sink: str,
                 labels: Mapping[str, str]) -> Ledger:
    """The ledger of a test whose publishers are a `programs.plugs.Fleet`.

    The gateway's drop counts come from its /status, or from `gateway status --json`
    (the store itself) when it is not running.
    """
    published = sum(fleet.expected(labels, fleet.sent()).values())
    status = gateway.status()
    if status is None:
        import json

        out = gateway.cli("status", "--config", str(gateway.config_path), "--json")
        status = json.loads(out.stdout)
    return ledger(test, published, fleet.expected(labels), got, sink_drops(status, sink))
