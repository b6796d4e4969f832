"""Keeping the store within its bounds, a little at a time, in the ingest thread.

Each round, within a time budget so ingest never waits long:
1. purge what every sink has confirmed (once a minute, or at once when space is short);
2. evict readings (and dead letters) older than `store.max_age`;
3. past `compact_at` of the budget, compact old readings (oldest, lowest priority first);
4. over the budget with nothing left to compact, evict the oldest readings of the
   lowest priority;
5. with room to spare, hand free pages back to the file system.
Work left over is picked up by the next round, which comes soon while `busy`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.clock import Clock
from gateway.config.schema import StoreSection
from gateway.store.bounds import Evictor, Space, measure
from gateway.store.compaction import Compactor
from gateway.store.inflight import InFlight

log = logging.getLogger("gateway.store")

#: how often the writer's in-memory last timestamps and ids are written to the file
FLUSH_EVERY = 300.0
#: how often rows every sink has confirmed are deleted, when the store has room to spare
PURGE_EVERY = 60.0
#: ... or as soon as about this many are
PURGE_MANY = 50_000
#: after a compaction pass has walked the whole store, wait this long (by the gateway's
#: clock: readings age by it) before the next: they must age into a coarser rule first
PASS_PAUSE = 60.0
#: eviction aims this far under the budget, so it does not run again at once
EVICT_TARGET = 0.95
#: a conservative guess of a stored reading's size, to size an eviction step
BYTES_PER_ROW = 30
VACUUM_STEP_PAGES = 2048
VACUUM_SLACK = 4 * 1024 * 1024
#: the WAL file keeps its size after a checkpoint: before evicting to make room, a
#: write-ahead log bigger than this is checkpointed and truncated
WAL_SLACK = 1024 * 1024


@dataclass
class Round:
    """What one housekeeping round did."""

    purged: int = 0
    evicted: Counter[tuple[str, str]] = field(default_factory=Counter)  # (reason, priority)
    compacted: Counter[str] = field(default_factory=Counter)  # priority -> rows removed
    dead_letters_evicted: int = 0
    vacuumed_pages: int = 0
    space: Space | None = None
    busy: bool = False  # work is left for the next round


class Housekeeper:
    """Enforces `store.max_bytes`, `min_free_bytes`, `max_age` and compaction on one connection."""

    def __init__(self, conn: sqlite3.Connection, path: Path, config: StoreSection,
                 inflight: InFlight, clock: Clock,
                 flush: Callable[[], None] = lambda: None) -> None:
        self.conn = conn
        self.path = path
        self.config = config
        self.inflight = inflight
        self.clock = clock
        self.flush = flush
        self._flushed = self.clock.monotonic()
        self._purge_due = 0.0
        self.compactor = Compactor(conn, config.compaction, inflight, clock)
        self.evictor = Evictor(conn, inflight, clock)
        self.evictor.before_delete = flush
        self._pass_ended: float | None = None
        self._reshaping = False
        self._incremental = conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        self.space: Space | None = None

    def measure(self) -> Space:
        c = self.config
        self.space = measure(self.conn, self.path, c.max_bytes, c.min_free_bytes)
        return self.space

    def run(self, purge: Callable[[int], int], seconds: float = 0.25,
            urgent: bool = False) -> Round:
        """One round: at most about `seconds` of work. `urgent`: the store cannot be
        written (a full disk): purge now, whatever is due."""
        done = Round()
        now = self.clock.monotonic()
        deadline = now + seconds
        space = self.measure()
        # Confirmed rows cost only space: deleting them a few at a time would rewrite
        # the same pages over and over, so they go once a minute, or as soon as there
        # are many (a drained backlog), or space is short.
        if urgent or now >= self._purge_due or space.pressure >= self.config.compact_at:
            done.purged = purge(1)
            self._purge_due = now + PURGE_EVERY
        else:
            done.purged = purge(PURGE_MANY)
        if done.purged:
            space = self.measure()
        if deadline - self._flushed >= FLUSH_EVERY:
            # The writer's last timestamps and ids reach the file now and then, so a
            # crash leaves little for the next start to read back (see schema).
            self.flush()
            self._flushed = deadline
        if self.config.max_age:
            self._age(done, deadline)
        space = self.measure()
        if space.pressure >= self.config.compact_at and self.config.compaction:
            # Over the budget, compaction gets half the round and eviction the rest: on a
            # slow card under steady input a pass need never end (new readings keep ageing
            # into a rule), and taking every round it would let the store outgrow its budget.
            until = deadline if space.pressure < 1.0 else now + seconds / 2
            space = self._compact(done, until, space)
        if space.pressure >= 1.0:
            space = self._evict(done, deadline, space)
        if self._incremental and space.free_pages:
            if space.file + space.wal > space.budget:
                self._give_back(done, space, over=True)
            elif space.pressure < self.config.compact_at:
                self._give_back(done, space)
        done.evicted.update(self.evictor.evicted)
        self.evictor.evicted.clear()
        if self._reshaping:
            self._reshaping = False
            self.inflight.reshaped += 1  # even again: done
        done.space = self.space
        return done

    def _reshape(self) -> None:
        """Stored rows are about to be deleted or folded: a backlog kept running must be
        counted again (InFlight.reshaped is odd from here to the end of the round)."""
        if not self._reshaping:
            self._reshaping = True
            self.inflight.reshaped += 1

    def _age(self, done: Round, deadline: float) -> None:
        max_age = self.config.max_age
        cutoff = int((self.clock.now() - max_age) * 1000)
        done.dead_letters_evicted += self.evictor.evict_dead_letters(20000, cutoff)
        oldest = self.evictor.oldest_ts()
        if not any(ts < cutoff for ts in oldest.values()):
            return
        self._reshape()
        while self.clock.monotonic() < deadline:
            if not self.evictor.evict_older_than(max_age):
                break
        else:
            done.busy = True

    def _compact(self, done: Round, deadline: float, space: Space) -> Space:
        if self.compactor.pass_done():
            ended = self._pass_ended
            if ended is not None and 0 <= self.clock.now() - ended < PASS_PAUSE:
                return space
            self.compactor.new_pass()
        self._reshape()
        while self.clock.monotonic() < deadline:
            folded = self.compactor.step()
            if folded is None:
                self._pass_ended = self.clock.now()
                return space
            for priority, n in folded.by_priority.items():
                done.compacted[priority] += n
            space = self.measure()
            if space.pressure < self.config.compact_at:
                return space
        done.busy = True
        return space

    def _evict(self, done: Round, deadline: float, space: Space) -> Space:
        if not self.compactor.pass_done() and self.config.compaction:
            done.busy = True  # compaction has more to fold: it goes first
            if space.pressure < 1.05:
                return space
        target = int(space.budget * EVICT_TARGET)
        slack = min(WAL_SLACK, space.budget // 16)
        while True:
            if space.wal > slack:
                # The WAL's size is room taken, not data (deleting rows writes to it too):
                # give it back before any more readings go.
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                space = self.measure()
            if space.used <= target:
                break
            if self.clock.monotonic() >= deadline:
                done.busy = True
                break
            rows = max(1000, min(20000, (space.used - target) // BYTES_PER_ROW))
            n = self.evictor.evict_dead_letters(rows)
            if n:
                done.dead_letters_evicted += n
            else:
                self._reshape()
                if not self.evictor.evict_oldest(rows):
                    break  # nothing left that may go (all in flight): next round
            space = self.measure()
        return space

    def _give_back(self, done: Round, space: Space, over: bool = False) -> None:
        """Return free pages to the file system: once they are plenty (after a backlog
        drained), or when the file itself is bigger than the budget (`over`)."""
        if not over and space.free_pages < max(VACUUM_SLACK, space.file // 4):
            return
        (before,) = self.conn.execute("PRAGMA freelist_count").fetchone()
        # executescript runs the pragma to the end; execute() frees one page a call.
        self.conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})")
        (after,) = self.conn.execute("PRAGMA freelist_count").fetchone()
        done.vacuumed_pages += int(before) - int(after)
        # Moving pages wrote them to the WAL: check them into the file and cut the WAL
        # back, or the space handed back would reappear there.
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        self.measure()
