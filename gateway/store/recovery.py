"""A damaged store is checked, moved aside and salvaged, so the gateway runs on by itself.

On start (and when ingest meets a damaged page) the store is checked with
SQLite's own `quick_check` (or `integrity_check`). A store that fails is moved
aside whole (`gateway.db.corrupt-<UTC time>`, with its -wal and -shm), a fresh
store is made, and everything still readable is copied into it: series, sink
cursors, readings and rollups, dead letters, counts. Ranges of rows that cannot
be read are skipped; how many readings that may have lost is counted (reason
`corrupt`, for each sink that had not confirmed them) and the whole event is
kept in the new store's `events` table, shown by `gateway status`, and reported
as the self-metric `gateway.store.recovered`. Nobody has to delete a file.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.clock import SYSTEM, Clock
from gateway.store.errors import classify
from gateway.store.schema import (
    READINGS,
    add_loss,
    connect,
    ensure_schema,
    readonly_uri,
    transaction,
)

log = logging.getLogger("gateway.store")

DB_NAME = "gateway.db"
CORRUPT = "corrupt"  # loss reason
_CHUNK = 2000
_SIDE_FILES = ("", "-wal", "-shm")

Progress = Callable[[str], None]


@dataclass
class Salvage:
    """What a recovery did, for the log, the events table and `gateway status`."""

    moved_to: str = ""
    problems: list[str] = field(default_factory=list)
    copied: dict[str, int] = field(default_factory=dict)  # table -> rows
    #: readings salvaged: rows, with each compacted row counted for all it holds
    readings: int = 0
    unreadable: dict[str, int] = field(default_factory=dict)  # table -> ids skipped (at most)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # reading ids (after, upto] skipped
    lost: dict[str, int] = field(default_factory=dict)  # sink -> readings lost (at most)

    def summary(self) -> str:
        lost = sum(self.unreadable.get(t, 0) for t in self.unreadable if t.startswith("readings"))
        return (f"moved to {self.moved_to}; salvaged {self.readings} readings"
                + (f", at most {lost} unreadable" if lost else ", nothing unreadable")
                + (f" ({'; '.join(self.problems[:3])})" if self.problems else ""))


def check(path: Path, full: bool = False, progress: Progress | None = None) -> list[str]:
    """SQLite's own check of the store file; [] when it is sound."""
    if not path.exists():
        return []
    pragma = "integrity_check" if full else "quick_check"
    try:
        conn = sqlite3.connect(readonly_uri(path), uri=True, isolation_level=None,
                               timeout=30)
    except sqlite3.Error as exc:
        return [str(exc)]
    try:
        if progress is not None:
            started = SYSTEM.monotonic()
            ticks = [0]

            def tick() -> int:
                ticks[0] += 1
                progress(f"checking ({pragma}) ... {SYSTEM.monotonic() - started:.0f} s")
                return 0

            conn.set_progress_handler(tick, 2_000_000)
        rows = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}(100)").fetchall()]
        return [] if rows == ["ok"] else rows
    except sqlite3.Error as exc:
        return [str(exc)]
    finally:
        conn.close()


def move_aside(path: Path, now: float) -> Path:
    """Rename the store and its -wal/-shm to <name>.corrupt-<UTC time>[-wal|-shm]."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in _SIDE_FILES:
        src = Path(f"{path}{suffix}")
        if src.exists():
            os.replace(src, f"{target}{suffix}")
    return target


def recover(data_dir: Path, problems: list[str], now: float | None = None,
            progress: Progress | None = None) -> Salvage:
    """Move the damaged store aside and copy what can be read into a fresh one."""
    now = SYSTEM.now() if now is None else now
    path = data_dir / DB_NAME
    salvage = Salvage(problems=list(problems))
    moved = move_aside(path, now)
    salvage.moved_to = str(moved)
    log.error("store %s is damaged (%s): moved to %s; salvaging what can be read",
              path, "; ".join(problems[:3]) or "unreadable", moved)
    fresh = connect(path)
    try:
        ensure_schema(fresh)
        try:
            old = sqlite3.connect(readonly_uri(moved), uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            salvage.problems.append(f"cannot open the damaged file: {exc}")
            old = None
        if old is not None:
            try:
                _Copier(old, fresh, salvage, progress).run()
            finally:
                old.close()
        _record(fresh, salvage, now)
    finally:
        fresh.close()
    log.error("store recovered: %s", salvage.summary())
    return salvage


def check_and_recover(data_dir: Path, mode: str = "quick",
                      progress: Progress | None = None,
                      clock: Clock = SYSTEM) -> Salvage | None:
    """The start-up check: None when the store is sound (or there is none yet)."""
    path = data_dir / DB_NAME
    if mode == "off" or not path.exists():
        return None
    started = clock.monotonic()
    problems = check(path, full=(mode == "full"), progress=progress)
    if not problems:
        log.info("store %s checked (%s) in %.1f s: sound", path, mode,
                 clock.monotonic() - started)
        return None
    return recover(data_dir, problems, clock.now(), progress=progress)


class _Copier:
    """Copies the readable rows of a damaged store, table by table, skipping bad ranges."""

    def __init__(self, old: sqlite3.Connection, new: sqlite3.Connection, salvage: Salvage,
                 progress: Progress | None) -> None:
        self.old = old
        self.new = new
        self.salvage = salvage
        self.progress = progress

    def _tables(self) -> set[str]:
        try:
            return {n for (n,) in self.old.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as exc:
            self.salvage.problems.append(f"schema unreadable: {exc}")
            return set()

    def run(self) -> None:
        tables = self._tables()
        last_id = self._last_id(tables)
        if "series" in tables:
            has_rollup = self._has_column("series", "rollup")
            cols = "id, metric, type, unit, priority, tags, last_ts" + (
                ", rollup" if has_rollup else "")
            self._copy("series", cols, "series", 1 << 40,
                       "INSERT OR IGNORE INTO series (id, metric, type, unit, priority, tags, "
                       "last_ts, rollup) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (lambda r: r) if has_rollup else (lambda r: (*r, "mean")))
        priorities = self._priorities()
        if "readings" in tables:  # a schema-1 store: one table for every priority
            for priority, table in READINGS.items():
                def of_priority(row: tuple, p: str = priority) -> bool:
                    return priorities.get(row[1]) == p

                self._copy("readings", "id, series, ts, value", table, last_id,
                           f"INSERT INTO {table} (id, series, ts, value) VALUES (?, ?, ?, ?)",
                           keep=of_priority)
        for table in READINGS.values():
            if table in tables:
                self._copy(table, "id, series, ts, value", table, last_id,
                           f"INSERT INTO {table} (id, series, ts, value) VALUES (?, ?, ?, ?)")
        simple = {
            "rollups": "id, samples, min, max, last, last_ts",
            "dead_letters": "id, sink, reason, at, series, ts, value" + (
                ", samples" if self._has_column("dead_letters", "samples") else ""),
            "events": "id, at, kind, detail",
        }
        for table, cols in simple.items():
            if table in tables:
                n = len(cols.split(","))
                self._copy(table, cols, table, 1 << 62,
                           f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * n)})")
        self._small_tables(tables)
        with transaction(self.new):
            self.new.execute("UPDATE meta SET value = ? WHERE key = 'last_id'",
                             (str(last_id),))
        rows = sum(self.salvage.copied.get(t, 0) for t in READINGS.values())
        # Rollups whose row was lost count for nothing: join them to the rows kept.
        extra = self.new.execute(
            "SELECT coalesce(sum(u.samples - 1), 0) FROM rollups u WHERE EXISTS (" +
            " UNION ALL ".join(f"SELECT 1 FROM {t} r WHERE r.id = u.id"
                               for t in READINGS.values()) + ")").fetchone()[0]
        self.salvage.readings = rows + int(extra)

    def _has_column(self, table: str, column: str) -> bool:
        try:
            return any(r[1] == column for r in self.old.execute(f"PRAGMA table_info({table})"))
        except sqlite3.Error:
            return False

    def _priorities(self) -> dict[int, str]:
        return {int(i): p for i, p in self.new.execute("SELECT id, priority FROM series")}

    def _last_id(self, tables: set[str]) -> int:
        """The highest row id ever given: from meta, sqlite_sequence or the tables."""
        found = 0
        queries = ["SELECT value FROM meta WHERE key = 'last_id'",
                   "SELECT seq FROM sqlite_sequence WHERE name = 'readings'"]
        queries += [f"SELECT max(id) FROM {t}" for t in (*READINGS.values(), "readings")
                    if t in tables]
        for q in queries:
            try:
                row = self.old.execute(q).fetchone()
            except sqlite3.Error:
                continue
            if row and row[0] is not None:
                found = max(found, int(row[0]))
        return found

    def _small_tables(self, tables: set[str]) -> None:
        """Cursors and counts, row by row: whatever can be read is worth keeping."""
        copies = {
            "cursors": ("SELECT sink, last_id, updated FROM cursors",
                        "INSERT OR REPLACE INTO cursors (sink, last_id, updated) VALUES (?, ?, ?)"),
            "tallies": ("SELECT name, priority, count FROM tallies",
                        "INSERT OR REPLACE INTO tallies (name, priority, count) VALUES (?, ?, ?)"),
        }
        if "losses" in tables:
            cols = "reason, sink, priority, count" if self._has_column("losses", "priority") \
                else "reason, sink, '', count"
            copies["losses"] = (f"SELECT {cols} FROM losses",
                                "INSERT OR REPLACE INTO losses (reason, sink, priority, count) "
                                "VALUES (?, ?, ?, ?)")
        for table, (read, write) in copies.items():
            if table not in tables:
                continue
            try:
                rows = self.old.execute(read).fetchall()
            except sqlite3.Error as exc:
                self.salvage.problems.append(f"{table} unreadable: {exc}")
                continue
            with transaction(self.new):
                self.new.executemany(write, rows)
            self.salvage.copied[table] = len(rows)

    def _copy(self, source: str, cols: str, target: str, hi: int, insert: str,
              shape: Callable[[tuple], tuple] = lambda r: r,
              keep: Callable[[tuple], bool] | None = None) -> None:
        copied = skipped = 0
        for rows, (after, upto) in self._walk(source, cols, hi):
            skipped += upto - after
            if upto > after and target.startswith("readings"):
                gaps = self.salvage.gaps
                if gaps and gaps[-1][1] == after:
                    gaps[-1] = (gaps[-1][0], upto)  # one damaged stretch, not many
                else:
                    gaps.append((after, upto))
            if keep is not None:
                rows = [r for r in rows if keep(r)]
            if rows:
                with transaction(self.new):
                    self.new.executemany(insert, [shape(r) for r in rows])
                copied += len(rows)
            if self.progress is not None:
                self.progress(f"salvaging {source}: {copied} rows copied")
        self.salvage.copied[target] = self.salvage.copied.get(target, 0) + copied
        if skipped:
            self.salvage.unreadable[target] = self.salvage.unreadable.get(target, 0) + skipped

    def _walk(self, table: str, cols: str,
              hi: int) -> Iterator[tuple[list[tuple], tuple[int, int]]]:
        """Rows in id order, chunk by chunk; past a damaged range, the ids (after, upto] skipped.

        Near damage the chunks shrink to single rows, so every readable row is kept.
        """
        query = f"SELECT {cols} FROM {table} WHERE id > ? ORDER BY id LIMIT ?"
        pos, limit = 0, _CHUNK
        while pos < hi:
            try:
                rows = self.old.execute(query, (pos, limit)).fetchall()
            except sqlite3.DatabaseError as exc:
                if not classify(exc).corrupt and "malformed" not in str(exc):
                    self.salvage.problems.append(f"{table}: {exc}")
                if limit > 1:
                    limit = max(1, limit // 16)
                    continue
                resume = self._readable_after(query, pos, hi)
                yield [], (pos, max(pos, min(resume, hi)))
                pos = resume
                continue
            if not rows:
                return
            yield rows, (pos, pos)
            pos = int(rows[-1][0])
            limit = min(_CHUNK, limit * 2)

    def _readable_after(self, query: str, bad: int, hi: int) -> int:
        """The smallest position past `bad` from which rows can be read again."""
        step = 1
        good = None
        while bad + step < hi + 1:
            try:
                self.old.execute(query, (bad + step, 1)).fetchall()
                good = bad + step
                break
            except sqlite3.DatabaseError:
                step *= 2
        if good is None:
            return hi + 1
        lo = bad + step // 2 if step > 1 else bad
        while good - lo > 1:  # the first readable position in (lo, good]
            mid = (lo + good) // 2
            try:
                self.old.execute(query, (mid, 1)).fetchall()
                good = mid
            except sqlite3.DatabaseError:
                lo = mid
        return good


def _record(conn: sqlite3.Connection, salvage: Salvage, now: float) -> None:
    """Count what may be lost, for each sink that had not confirmed it, and keep the event."""
    cursors = dict(conn.execute("SELECT sink, last_id FROM cursors").fetchall())
    with transaction(conn):
        for sink, cursor in (cursors or {"-": 0}).items():
            # Ids skipped above the sink's cursor: at most that many readings it never got.
            lost_rows = sum(max(0, upto - max(after, int(cursor))) for after, upto in salvage.gaps)
            if lost_rows:
                salvage.lost[sink] = lost_rows
                add_loss(conn, CORRUPT, sink, lost_rows)
        detail = {"moved_to": salvage.moved_to, "problems": salvage.problems[:10],
                  "copied": salvage.copied, "unreadable": salvage.unreadable,
                  "summary": salvage.summary()}
        conn.execute("INSERT INTO events (at, kind, detail) VALUES (?, 'recovered', ?)",
                     (now, json.dumps(detail)))
