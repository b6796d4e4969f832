"""Compaction: old readings folded into fewer rows, so a long outage arrives coarser, not holed.

Readings of one series that fall in one time bucket become one row: its value
is the mean of a level (power, temperature), the last value of a running total
(energy, uptime) or the sum of a count; beside it the row keeps how many
readings it holds (`samples`), their min, max and last value, and the time of
the last one (table `rollups`). A state (a relay, occupancy, online) is never
averaged: only consecutive reports of the same value are folded, so every change
stays where it was.

A folded row takes the highest id of the rows it replaces and the earliest
timestamp, so timestamps stay unique per series and a sink's cursor keeps its
meaning. Rows are only folded with rows every sink has seen alike: groups never
straddle a sink's cursor, and rows a sink is sending are left alone
(`InFlight`). Each step is one short transaction on a contiguous run of ids of
one priority's table, so whole pages come free and ingest waits little.
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.clock import Clock
from gateway.config.schema import CompactionRule
from gateway.store.inflight import InFlight
from gateway.store.schema import EVICTION_ORDER, READINGS, add_tally, transaction

CHUNK = 20000


@dataclass
class _Member:
    id: int
    ts: int
    value: float
    samples: int
    min: float
    max: float
    last: float
    last_ts: int


@dataclass
class Folded:
    """What one compaction step did."""

    rows_before: int = 0
    rows_after: int = 0
    by_priority: dict[str, int] = field(default_factory=dict)  # rows removed

    @property
    def removed(self) -> int:
        return self.rows_before - self.rows_after


def _saves_space(members: list[_Member]) -> bool:
    """A folded row costs about as much as three raw ones (its rollups entry holds five
    numbers): two raw readings stay as they are, two rollups become one."""
    if len(members) >= 3:
        return True
    return len(members) == 2 and any(m.samples > 1 for m in members)


class Compactor:
    """Walks each priority's table from its oldest row, folding what the rules allow."""

    def __init__(self, conn: sqlite3.Connection, rules: Sequence[CompactionRule],
                 inflight: InFlight, clock: Clock) -> None:
        self.conn = conn
        self.rules = list(rules)
        self.inflight = inflight
        self.clock = clock
        self._kinds: dict[int, str] = {}
        #: per table, the id the current pass has reached
        self._position: dict[str, int] = {}

    def _rules_for(self, priority: str) -> list[CompactionRule]:
        return [r for r in self.rules if priority in r.priorities]

    def pass_done(self) -> bool:
        """True when the current pass has walked every table to its end."""
        return all(self._position.get(t, 0) < 0 for t in READINGS.values())

    def new_pass(self) -> None:
        self._position.clear()

    def step(self) -> Folded | None:
        """Fold one chunk of the first table with work left; None when the pass is done."""
        for priority in EVICTION_ORDER:
            table = READINGS[priority]
            if self._position.get(table, 0) < 0:
                continue
            rules = self._rules_for(priority)
            if not rules:
                self._position[table] = -1
                continue
            done = self._step_table(priority, table, rules)
            if done is not None:
                return done
            self._position[table] = -1
        return None

    def _kind(self, sid: int) -> str:
        kind = self._kinds.get(sid)
        if kind is None:
            row = self.conn.execute("SELECT rollup FROM series WHERE id = ?", (sid,)).fetchone()
            kind = self._kinds[sid] = row[0] if row else "mean"
        return kind

    def _step_table(self, priority: str, table: str,
                    rules: list[CompactionRule]) -> Folded | None:
        """Fold the next chunk of `table`; None when the table has nothing more."""
        now_ms = int(self.clock.now() * 1000)
        youngest = min(r.older_than for r in rules)
        start = self._position.get(table, 0)
        with self.inflight.lock, transaction(self.conn):
            claims = self.inflight.claims()
            rows = self.conn.execute(
                f"SELECT r.id, r.series, r.ts, r.value, u.samples, u.min, u.max, u.last, "
                f"u.last_ts FROM {table} r LEFT JOIN rollups u ON u.id = r.id "
                "WHERE r.id > ? ORDER BY r.id LIMIT ?", (start, CHUNK)).fetchall()
            if not rows or now_ms - rows[0][2] < youngest * 1000:
                return None
            bounds = sorted(set(self._cursors()) | {b for _, b in claims})
            folded = self._write(table, self._groups(rows, bounds, claims, rules, now_ms))
            if folded.removed:
                folded.by_priority[priority] = folded.removed
                self._tally(priority, folded)
        self._position[table] = rows[-1][0]
        return folded

    def _cursors(self) -> list[int]:
        return [int(c) for (c,) in self.conn.execute("SELECT last_id FROM cursors")]

    def _groups(self, rows: list[tuple], bounds: list[int], claims: list[tuple[int, int]],
                rules: list[CompactionRule], now_ms: int) -> dict[tuple, list[_Member]]:
        """Rows that may become one, by (series, segment, bucket length, bucket[, run])."""
        groups: dict[tuple, list[_Member]] = {}
        runs: dict[tuple, tuple[float, int]] = {}  # state series -> (value, run number)
        for rid, sid, ts, value, samples, lo, hi, last, last_ts in rows:
            if claims and InFlight.claimed(rid, claims):
                continue
            age_ms = now_ms - ts
            bucket = max((r.bucket for r in rules if age_ms >= r.older_than * 1000),
                         default=0.0)
            if not bucket:
                continue
            bucket_ms = int(bucket * 1000)
            segment = bisect.bisect_left(bounds, rid)
            kind = self._kind(sid)
            key: tuple = (sid, segment, bucket_ms, ts // bucket_ms)
            if kind == "changes":
                prev = runs.get(key)
                run = prev[1] if prev is not None and prev[0] == value else (
                    prev[1] + 1 if prev is not None else 0)
                runs[key] = (value, run)
                key = (*key, run)
            member = _Member(rid, ts, value, samples or 1,
                             value if lo is None else lo, value if hi is None else hi,
                             value if last is None else last, ts if last_ts is None else last_ts)
            groups.setdefault(key, []).append(member)
        return groups

    def _write(self, table: str, groups: dict[tuple, list[_Member]]) -> Folded:
        folded = Folded()
        updates: list[tuple[int, float, int]] = []
        rollups: list[tuple[int, int, float, float, float, int]] = []
        deletes: list[tuple[int]] = []
        for key, members in groups.items():
            if not _saves_space(members):
                continue
            folded.rows_before += len(members)
            folded.rows_after += 1
            keep = max(members, key=lambda m: m.id)
            newest = max(members, key=lambda m: m.last_ts)
            samples = sum(m.samples for m in members)
            kind = self._kind(key[0])
            if kind == "sum":
                value = sum(m.value for m in members)
            elif kind == "mean":
                value = sum(m.value * m.samples for m in members) / samples
            else:  # last (a running total) and changes (all alike) keep the newest value
                value = newest.last
            updates.append((min(m.ts for m in members), value, keep.id))
            rollups.append((keep.id, samples, min(m.min for m in members),
                            max(m.max for m in members), newest.last, newest.last_ts))
            deletes.extend((m.id,) for m in members if m is not keep)
        if updates:
            self.conn.executemany(f"UPDATE {table} SET ts = ?, value = ? WHERE id = ?", updates)
            self.conn.executemany("INSERT OR REPLACE INTO rollups (id, samples, min, max, last, "
                                  "last_ts) VALUES (?, ?, ?, ?, ?, ?)", rollups)
            self.conn.executemany(f"DELETE FROM {table} WHERE id = ?", deletes)
            self.conn.executemany("DELETE FROM rollups WHERE id = ?", deletes)
        return folded

    def _tally(self, priority: str, folded: Folded) -> None:
        for name, n in (("compacted_readings", folded.removed),
                        ("compacted_rows", folded.rows_after)):
            add_tally(self.conn, name, n, priority)
