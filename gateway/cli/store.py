"""`gateway store stats | check | export | redeliver | vacuum`: look into, check, export,
redeliver dead letters from and shrink the store.

Each finds the store through `--config FILE` (the gateway's `data_dir`, relative
to the config file's folder) or `--data-dir DIR`. `stats`, `check` and `export`
only read, so they work while the gateway runs; `check --repair` and `vacuum`
take the store's lock and refuse while a gateway holds it. Results go to
stdout, progress and errors to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from gateway.cli.text import age, local_time, size
from gateway.clock import SYSTEM
from gateway.config.load import CONFIG_ENV, DEFAULT_CONFIG, config_path, load_config
from gateway.config.schema import StoreSection
from gateway.config.validate import ConfigError, parse_duration
from gateway.model import PRIORITIES
from gateway.sinks.jsonlines import line_for
from gateway.store import redelivery
from gateway.store.errors import classify
from gateway.store.inspect import (
    Selection,
    StoreStats,
    StoreUnreadable,
    count_rows,
    export_rows,
    last_id,
    open_readonly,
    store_stats,
)
from gateway.store.lock import StoreBusy, StoreLock, holder
from gateway.store.outbox import DB_NAME, Outbox
from gateway.store.recovery import check, recover
from gateway.store.schema import connect

EXIT_OK, EXIT_PROBLEM = 0, 1
#: seconds between progress lines: refreshed in place on a terminal, plain lines in a log
TTY_EVERY, PLAIN_EVERY = 0.2, 2.0
VACUUM_STEP_PAGES = 1024
STOP_HINT = "e.g. sudo systemctl stop edge-gateway"


# -- where the store is ----------------------------------------------------------------


@dataclass(frozen=True)
class StoreLocation:
    """The store's folder and its config section (defaults when found by --data-dir)."""

    data_dir: Path
    store: StoreSection
    flag: str  # how it was named: "--config" or "--data-dir", and with what
    value: str

    @property
    def path(self) -> Path:
        return self.data_dir / DB_NAME

    @property
    def from_config(self) -> bool:
        return self.flag == "--config"

    @property
    def option(self) -> str:
        """The option as typed again in a hint, e.g. `--config /etc/edge-gateway/gateway.yaml`."""
        return f"{self.flag} {shlex.quote(self.value)}"


def locate(args: argparse.Namespace) -> StoreLocation:
    """The store named on the command line; a config that does not load exits 1."""
    if args.data_dir is not None:
        folder = Path(os.path.expanduser(args.data_dir)).resolve()
        return StoreLocation(folder, StoreSection(), "--data-dir", args.data_dir)
    from gateway.config.load import data_dir

    path = config_path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_PROBLEM) from None
    folder = data_dir(config, Path(path).resolve().parent)
    return StoreLocation(folder, config.store, "--config", path)


def require_store(where: StoreLocation, write: bool = False) -> None:
    """StoreUnreadable unless a store file is there (so nothing is made at a wrong path)
    and this user may read it (and write it, for `write`)."""
    if not where.path.is_file():
        raise StoreUnreadable(f"no store at {where.path} (check {where.flag}; "
                              "the gateway makes the store when it first runs)")
    try:
        with where.path.open("r+b" if write else "rb"):
            pass
    except OSError as exc:
        doing = "write" if write else "read"
        raise StoreUnreadable(f"cannot {doing} the store {where.path}: "
                              f"{exc.strerror or exc} (run this as the user the gateway "
                              "runs as)") from None


# -- progress on stderr ----------------------------------------------------------------


class ProgressLine:
    """Progress for long work on stderr: one line refreshed in place on a terminal,
    plain lines (one every few seconds) otherwise. Short work shows nothing; with
    `live` false, only the last word (`done`)."""

    def __init__(self, stream: IO[str] | None = None, live: bool = True,
                 clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = live
        self.tty = self.stream.isatty()
        self.every = TTY_EVERY if self.tty else PLAIN_EVERY
        self.clock = clock
        self._last = clock()
        self._shown = False

    def __call__(self, text: str) -> None:
        now = self.clock()
        if not self.live or now - self._last < self.every:
            return
        self._last = now
        if self.tty:
            self.stream.write(f"\r{text}\x1b[K")
        else:
            self.stream.write(f"{text}\n")
        self.stream.flush()
        self._shown = True

    def done(self, text: str = "") -> None:
        """End the progress line; `text` (if any) stays as the last word."""
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
        if text:
            self.stream.write(f"{text}\n")
        self.stream.flush()
        self._shown = False


_TALLY_WORDS = {"dead_letters_evicted": "dead letters evicted to make room"}


def render_stats(s: StoreStats, budget_from_config: bool) -> str:
    """`gateway store stats` as text a volunteer can read."""
    lines = [f"store {s.path}"]
    lines.append(f"  on disk: {size(s.file_bytes + s.wal_bytes)} (file {size(s.file_bytes)}, "
                 f"write-ahead log {size(s.wal_bytes)}); {size(s.free_bytes)} of the file is "
                 "free pages, reused before it grows")
    share = f" ({s.data_bytes / s.budget_bytes:.0%})" if s.budget_bytes else ""
    lines.append(f"  data: {size(s.data_bytes)} of a {size(s.budget_bytes)} budget{share}; "
                 f"{size(s.fs_free_bytes)} free on the disk")
    source = "from the config" if budget_from_config else \
        "defaults, as no --config was given"
    lines.append(f"  budget: store.max_bytes {size(s.max_bytes)}, store.min_free_bytes "
                 f"{size(s.min_free_bytes)} ({source})")
    per_row = f"{s.bytes_per_row:.0f}" if s.bytes_per_row is not None else "-"
    per_reading = f"{s.bytes_per_reading:.0f}" if s.bytes_per_reading is not None else "-"
    lines.append(f"  holds {s.readings:,} readings in {s.rows:,} rows of {s.series:,} series: "
                 f"{per_row} bytes a row, {per_reading} bytes a reading")
    lines.append(f"    {'priority':<10}{'rows':>12}{'rollups':>12}{'readings':>12}")
    for priority in PRIORITIES:
        p = s.priorities[priority]
        lines.append(f"    {priority:<10}{p.rows:>12,}{p.compacted_rows:>12,}{p.readings:>12,}")
    rollups = sum(p.compacted_rows for p in s.priorities.values())
    if rollups:
        stand = sum(p.compacted_readings for p in s.priorities.values())
        lines.append(f"    ({rollups:,} rollup rows, made by compaction, stand for "
                     f"{stand:,} readings)")
    lines.append("  waiting for each sink (rows after its cursor):")
    if not s.sinks:
        lines.append("    no sink has a cursor yet")
    for k in s.sinks:
        if not k.backlog_rows:
            lines.append(f"    {k.name}: nothing waiting")
            continue
        readings = f" ({k.backlog_readings:,} readings)" if \
            k.backlog_readings != k.backlog_rows else ""
        lines.append(f"    {k.name}: {k.backlog_rows:,} rows{readings}, oldest "
                     f"{age(k.oldest_age)} old")
    if s.losses:
        lines.append("  readings given up since the store was made (reason: sink, priority):")
        for x in s.losses:
            lines.append(f"    {x['reason']}: {x['sink']}, {x['priority'] or '-'}: "
                         f"{x['count']:,}")
    tallies = {(t["name"], t["priority"]): t["count"] for t in s.tallies}
    if tallies:
        lines.append("  compaction and housekeeping so far:")
        for priority in PRIORITIES:
            made = tallies.pop(("compacted_rows", priority), 0)
            fewer = tallies.pop(("compacted_readings", priority), 0)
            if made or fewer:
                lines.append(f"    {priority}: {made + fewer:,} rows folded into {made:,} "
                             f"rollup rows ({fewer:,} rows fewer)")
        for (name, priority), n in sorted(tallies.items()):
            words = _TALLY_WORDS.get(name, name)
            lines.append(f"    {words}{f' ({priority})' if priority else ''}: {n:,}")
    if s.dead_letters:
        lines.append("  dead letters kept (table dead_letters; counted as given up):")
        for d in s.dead_letters:
            lines.append(f"    {d['sink']}, {d['reason']}: {d['rows']:,} rows"
                         + (f" ({d['readings']:,} readings)" if d["readings"] != d["rows"]
                            else ""))
    if s.events:
        more = f", {len(s.events)} newest shown" if s.events_total > len(s.events) else ""
        lines.append(f"  store events ({s.events_total} in all{more}):")
        for e in s.events:
            detail = e["detail"]
            words = detail.get("summary", detail) if isinstance(detail, dict) else detail
            lines.append(f"    {local_time(e['at'])} {e['kind']}: {words}")
    return "\n".join(lines)


# -- the commands ----------------------------------------------------------------------


def cmd_stats(args: argparse.Namespace, where: StoreLocation) -> int:
    require_store(where)
    outbox = open_readonly(where.data_dir)
    try:
        stats = store_stats(outbox, where.store.max_bytes, where.store.min_free_bytes)
    finally:
        outbox.close()
    if args.json:
        print(json.dumps({**stats.as_dict(), "budget_from_config": where.from_config},
                         indent=2))
    else:
        print(render_stats(stats, where.from_config))
    return EXIT_OK


def cmd_check(args: argparse.Namespace, where: StoreLocation) -> int:
    require_store(where, write=args.repair)
    lock = StoreLock(where.data_dir) if args.repair else None
    if lock is not None:
        try:
            lock.acquire()
        except StoreBusy as exc:
            print(f"gateway store check --repair: {exc} ({STOP_HINT}). A running gateway "
                  "checks its store when it starts and salvages a damaged one by itself.",
                  file=sys.stderr)
            return EXIT_PROBLEM
    try:
        pragma = "integrity_check" if args.full else "quick_check"
        progress = ProgressLine()
        problems = check(where.path, full=args.full, progress=progress)
        progress.done()
        if not problems:
            print(f"{where.path}: sound ({pragma})" + ("; nothing to repair" if args.repair
                                                      else ""))
            return EXIT_OK
        print(f"{where.path}: damaged: {pragma} found {len(problems)} problem(s):")
        for problem in problems[:20]:
            print(f"  {problem}")
        if len(problems) > 20:
            print(f"  ... and {len(problems) - 20} more")
        if lock is None:
            print("To repair it: start the gateway (it moves a damaged store aside and "
                  "salvages what can be read), or, with the gateway stopped, run: "
                  f"gateway store check --repair {where.option}")
            return EXIT_PROBLEM
        salvage = recover(where.data_dir, problems, progress=progress)
        progress.done()
        print(f"repaired: {salvage.summary()}")
        for sink, n in sorted(salvage.lost.items()):
            print(f"  sink {sink}: at most {n:,} readings it had not confirmed could not be "
                  "read (counted as given up, reason corrupt)")
        print(f"the damaged file is kept at {salvage.moved_to}; delete it once you no longer "
              "need it")
        return EXIT_OK
    finally:
        if lock is not None:
            lock.release()


def _when(text: str) -> float:
    """An argparse type: UTC seconds from ISO-8601 (no zone: local time) or an age (2h)."""
    try:
        return parse_when(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a time such as 2026-11-20T10:00 or 2026-11-20 (local time "
            "unless a zone is given, e.g. Z or +01:00), or an age such as 90m, 2h, 3d"
        ) from None


_AGE = re.compile(r"^\s*(\d+(\.\d*)?|\.\d+)\s*[a-zA-Z]+\s*$")


def parse_when(text: str, now: float | None = None) -> float:
    """UTC seconds: `2026-11-20T10:00`, `2026-11-20` (local time without a zone), with a
    zone (`Z`, `+01:00`), or an age: `2h`, `3d` mean that long before `now`."""
    if _AGE.match(text):
        ago = parse_duration(text.strip())
        if ago is None:
            raise ValueError(text)
        return (SYSTEM.now() if now is None else now) - ago
    return datetime.fromisoformat(text.strip()).timestamp()  # naive: local time


def cmd_export(args: argparse.Namespace, where: StoreLocation) -> int:
    require_store(where)
    if args.since is not None and args.until is not None and args.since >= args.until:
        print(f"gateway store export: --since {local_time(args.since)} is not before "
              f"--until {local_time(args.until)}", file=sys.stderr)
        return EXIT_PROBLEM
    outbox = open_readonly(where.data_dir)
    try:
        after = 0
        if args.sink is not None:
            cursors = outbox.cursors()
            if args.sink not in cursors:
                known = ", ".join(sorted(cursors)) or "none yet"
                print(f"gateway store export: no sink {args.sink!r} in the store at "
                      f"{where.path}; known sinks: {known}", file=sys.stderr)
                return EXIT_PROBLEM
            after = cursors[args.sink]
        selection = Selection(after=after, upto=last_id(outbox),
                              since_ms=None if args.since is None else int(args.since * 1000),
                              until_ms=None if args.until is None else int(args.until * 1000))
        return _export(outbox, selection, args.output)
    finally:
        outbox.close()


def cmd_redeliver(args: argparse.Namespace, where: StoreLocation) -> int:
    """Put a sink's dead letters back in its queue (works while the gateway runs)."""
    require_store(where, write=True)
    outbox = Outbox(where.data_dir, where.store.durability)
    try:
        kept = outbox.dead_letter_counts()
        reasons = sorted({r for (s, r) in kept if s == args.sink})
        if not reasons:
            sinks = sorted({s for s, _ in kept})
            known = (f"dead letters are kept for: {', '.join(sinks)}" if sinks
                     else "the store holds no dead letters")
            print(f"gateway store redeliver: no dead letters for sink {args.sink!r} in "
                  f"{where.path}; {known}", file=sys.stderr)
            return EXIT_PROBLEM
        if args.reason is not None and args.reason not in reasons:
            print(f"gateway store redeliver: sink {args.sink!r} has no dead letters refused "
                  f"as {args.reason!r}; its reasons: {', '.join(reasons)}", file=sys.stderr)
            return EXIT_PROBLEM
        rows, readings = redelivery.queue(
            outbox, args.sink, args.reason,
            None if args.since is None else int(args.since * 1000),
            None if args.until is None else int(args.until * 1000))
    finally:
        outbox.close()
    what = f" refused as {args.reason}" if args.reason else ""
    print(f"queued {rows:,} dead letter(s){what} ({readings:,} reading(s)) for sink "
          f"{args.sink} to be sent again")
    pid = holder(where.data_dir)
    if pid is not None:
        print(f"the running gateway (pid {pid}) sends them within a second or so; "
              f"`gateway status {where.option}` shows how it goes")
    else:
        print("no gateway runs on this store now: they are sent when it starts")
    return EXIT_OK


def _export(outbox: Outbox, selection: Selection, output: str | None) -> int:
    total = count_rows(outbox, selection)
    target = output or "stdout"
    if output is None:
        out: IO[bytes] = sys.stdout.buffer
    else:
        try:
            out = open(output, "wb")  # noqa: SIM115 - closed below, after the last row
        except OSError as exc:
            print(f"gateway store export: cannot write {output}: {exc.strerror or exc}",
                  file=sys.stderr)
            return EXIT_PROBLEM
    # Rows shown on this terminal already say how far it has got.
    progress = ProgressLine(live=bool(output) or not sys.stdout.isatty())
    rows = readings = 0
    chunk: list[bytes] = []
    try:
        for row in export_rows(outbox, selection):
            chunk.append(line_for(row))
            rows += 1
            readings += row.samples
            if len(chunk) >= 1000:
                out.write(b"".join(chunk))
                chunk.clear()
                share = f" ({rows / total:.0%})" if total >= rows else ""
                progress(f"exporting: {rows:,} of {total:,} rows written{share}")
        out.write(b"".join(chunk))
        out.flush()
    except BrokenPipeError:
        # The reader has gone (`| head`): that is the end of it, not an error.
        progress.done()
        _quiet_stdout()
        return EXIT_OK
    except OSError as exc:
        progress.done()
        print(f"gateway store export: cannot write {target}: {exc.strerror or exc}",
              file=sys.stderr)
        return EXIT_PROBLEM
    finally:
        if output is not None:
            out.close()
    progress.done(f"exported {rows:,} rows ({readings:,} readings) to {target}")
    return EXIT_OK


def cmd_vacuum(args: argparse.Namespace, where: StoreLocation) -> int:
    require_store(where, write=True)
    lock = StoreLock(where.data_dir)
    try:
        lock.acquire()
    except StoreBusy as exc:
        print(f"gateway store vacuum: {exc} ({STOP_HINT}), then run vacuum again. The "
              "running gateway gives free space back by itself a little at a time.",
              file=sys.stderr)
        return EXIT_PROBLEM
    try:
        return _vacuum(where.path)
    finally:
        lock.release()


def _quiet_stdout() -> None:
    """After a broken pipe: what is left for stdout (flushed at exit) goes nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _on_disk(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.stat(f"{path}{suffix}").st_size
        except FileNotFoundError:
            pass
    return total


def _vacuum(path: Path) -> int:
    before = _on_disk(path)
    conn = connect(path)
    try:
        (mode,) = conn.execute("PRAGMA auto_vacuum").fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        print(f"{path}: {size(before)} on disk, of which {size(free * page_size)} "
              f"({free:,} pages) is free space inside the file")
        progress = ProgressLine()
        if mode == 2:
            _incremental(conn, int(free), progress)
        else:
            print("the store was made without auto_vacuum=incremental: rewriting it whole "
                  "(VACUUM), which also lets the gateway give space back by itself from now on")
            started = SYSTEM.monotonic()

            def tick() -> int:
                progress(f"vacuum: rewriting the store ... {SYSTEM.monotonic() - started:.0f} s")
                return 0

            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # applied by the VACUUM
            conn.set_progress_handler(tick, 200_000)
            try:
                conn.execute("VACUUM")
            finally:
                conn.set_progress_handler(None, 0)
                progress.done()
            print(f"rewritten in {SYSTEM.monotonic() - started:.1f} s")
        # In WAL mode the file is cut short when the log is checkpointed.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    after = _on_disk(path)
    print(f"file size: {size(before)} -> {size(after)} "
          f"({size(max(0, before - after))} given back to the file system)")
    return EXIT_OK


def _incremental(conn: sqlite3.Connection, free: int, progress: ProgressLine) -> None:
    if not free:
        print("no free pages inside the file: nothing to give back")
        return
    left = free
    while left:
        # executescript runs the pragma to the end; execute() frees one page a call.
        conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})")
        (now_left,) = conn.execute("PRAGMA freelist_count").fetchone()
        if now_left >= left:
            break  # nothing more came free: do not spin
        left = int(now_left)
        progress(f"incremental vacuum: {free - left:,} of {free:,} free pages given back "
                 f"({(free - left) / free:.0%})")
    progress.done(f"incremental vacuum: {free - left:,} of {free:,} free pages given back")


# -- the parser ------------------------------------------------------------------------


Command = Callable[[argparse.Namespace, StoreLocation], int]


def _guarded(command: Command, name: str) -> Callable[[argparse.Namespace], int]:
    """Errors a user can cause (no store, wrong path, unreadable file) as one line, exit 1."""

    def run(args: argparse.Namespace) -> int:
        where = locate(args)
        try:
            return command(args, where)
        except StoreUnreadable as exc:
            print(f"gateway store {name}: {exc}", file=sys.stderr)
        except BrokenPipeError:
            _quiet_stdout()  # the reader has gone (`| head`): not an error
            return EXIT_OK
        except sqlite3.Error as exc:
            fault = classify(exc)
            hint = f"; see `gateway store check {where.option}`" if fault.corrupt else ""
            print(f"gateway store {name}: {where.path}: {fault.explain(exc)}{hint}",
                  file=sys.stderr)
        except OSError as exc:
            print(f"gateway store {name}: {exc.filename or where.path}: "
                  f"{exc.strerror or exc}", file=sys.stderr)
        return EXIT_PROBLEM

    return run


def add_commands(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """The `gateway store` subcommands, on the `store` subparser of the `gateway` command.

    `common` holds the options every command takes (--log-level)."""
    parser.description = ("Look into the store, check it, export its readings or give its "
                          "free space back. stats, check and export only read (they work "
                          "while the gateway runs); check --repair and vacuum need it stopped.")
    where = argparse.ArgumentParser(add_help=False, parents=[common])
    group = where.add_mutually_exclusive_group()
    group.add_argument("--config", "-c", metavar="FILE",
                       help=f"the gateway's YAML config, for its data_dir (default: "
                            f"${CONFIG_ENV}, else {DEFAULT_CONFIG})")
    group.add_argument("--data-dir", metavar="DIR",
                       help="the folder holding gateway.db (for a store without its config)")
    sub = parser.add_subparsers(dest="store_command", required=True, metavar="COMMAND")

    p = sub.add_parser("stats", parents=[where],
                       help="what the store holds: size against the budget, rows, backlogs, "
                            "losses, compaction, events")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_guarded(cmd_stats, "stats"))

    p = sub.add_parser("check", parents=[where],
                       help="SQLite's integrity check of the store; exit 1 when damaged")
    p.add_argument("--full", action="store_true",
                   help="integrity_check (slower, thorough) instead of quick_check")
    p.add_argument("--repair", action="store_true",
                   help="move a damaged store aside and salvage what can be read (the "
                        "gateway must be stopped)")
    p.set_defaults(func=_guarded(cmd_check, "check"))

    p = sub.add_parser("export", parents=[where],
                       help="the stored readings as JSON lines (the file sink's format)")
    p.add_argument("--sink", help="only what still waits for this sink")
    p.add_argument("--since", type=_when, metavar="T",
                   help="readings from T on: 2026-11-20T10:00, 2026-11-20 (local time unless "
                        "a zone is given) or an age: 2h, 3d")
    p.add_argument("--until", type=_when, metavar="T", help="readings before T (as --since)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=_guarded(cmd_export, "export"))

    p = sub.add_parser("redeliver", parents=[where],
                       help="put a sink's dead letters back in its queue, once what refused "
                            "them is fixed (works while the gateway runs)")
    p.add_argument("--sink", required=True, help="the sink to send them to again")
    p.add_argument("--reason", help="only those refused for this reason (e.g. rejected_400)")
    p.add_argument("--since", type=_when, metavar="T",
                   help="only readings from T on (as for export: 2026-11-20T10:00, 2h, 3d)")
    p.add_argument("--until", type=_when, metavar="T", help="only readings before T")
    p.set_defaults(func=_guarded(cmd_redeliver, "redeliver"))

    p = sub.add_parser("vacuum", parents=[where],
                       help="give free space inside the store back to the file system "
                            "(the gateway must be stopped)")
    p.set_defaults(func=_guarded(cmd_vacuum, "vacuum"))
