"""File sink: each reading as one JSON line in a local file, rotated by size.

For a gateway with no cloud account, and for `gateway demo`. A line is a reading
in the gateway's one JSON form (gateway.sinks.jsonform), as the MQTT sink sends it.

A batch is confirmed only once its lines are written and flushed to the file
and, with `fsync: true`, on the disk. A write that fails (no space, no
permission, the path is a folder) confirms nothing after the last whole,
flushed part, so the rest waits in the store and is retried like any sink.

Rotation works like logrotate and Python's RotatingFileHandler: when the next
line would take the file past `max_bytes`, `path` becomes `path.1`, `path.1`
becomes `path.2` and so on up to `path.<keep>`; the oldest beyond `keep` is
removed (logged). Lines are never split between files, so a file exceeds
`max_bytes` only when it holds a single line longer than that.

A crash in the middle of a write can leave a partial last line. On opening,
such a line is ended with a newline, so the lines after it stay whole; the
interrupted batch was never confirmed, so it is written again (at-least-once).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from gateway.clock import SYSTEM, Clock
from gateway.model import Row
from gateway.sinks.base import Outcome, Sink, SinkContext
from gateway.sinks.file_config import FileSinkConfig
from gateway.sinks.jsonform import JsonForm, reading_json

log = logging.getLogger("gateway.sink.file")

_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


def line_for(row: Row) -> bytes:
    """One reading as a JSON line (newline included)."""
    return reading_json(row) + b"\n"


class FileSink(Sink):
    """Appends readings to a JSON-lines file; `path` is already resolved by the caller."""

    confirms = "lines written and flushed to the file (and fsynced, with fsync: true)"

    def __init__(self, config: FileSinkConfig, path: Path,
                 clock: Clock = SYSTEM) -> None:
        super().__init__(config.name, clock)
        self.config = config
        self.path = path
        self._fd: int | None = None
        self._size = 0
        self._json = JsonForm()
        # A send abandoned on timeout keeps running in its thread; the next one waits.
        self._lock = threading.Lock()

    @classmethod
    def build(cls, config: FileSinkConfig, context: SinkContext) -> FileSink:
        # A relative path is inside the gateway's data_dir, beside the store, not beside
        # the config: the service may write only there (systemd's ProtectSystem=strict
        # leaves /etc, where the config lives, read-only), and written data belongs with
        # the state.
        path = Path(os.path.expanduser(config.path))
        return cls(config, path if path.is_absolute() else (context.data_dir / path).resolve(),
                   context.clock)

    # The file is opened by the first send, not here: a bad path is then a failure
    # that is reported and retried, not a crash at start.

    async def close(self) -> None:
        def close() -> None:
            with self._lock:
                self._close()

        await asyncio.to_thread(close)

    async def send(self, rows: Sequence[Row]) -> Outcome:
        return await asyncio.to_thread(self._send, rows)

    def _send(self, rows: Sequence[Row]) -> Outcome:
        encode = self._json.encode
        lines = [encode(r) + b"\n" for r in rows]
        limit = self.config.max_bytes
        done = 0
        with self._lock:
            try:
                self._ensure_open()
                chunk: list[bytes] = []
                chunk_bytes = 0
                for line in lines:
                    size = self._size + chunk_bytes
                    if limit and size and size + len(line) > limit:
                        self._write_out(chunk)
                        done += len(chunk)
                        chunk, chunk_bytes = [], 0
                        self._rotate()
                    chunk.append(line)
                    chunk_bytes += len(line)
                self._write_out(chunk)
                done += len(chunk)
            except OSError as exc:
                # Reopened (and a partial line ended) by the next send.
                self._close_quietly()
                return Outcome(done=done, delivered=done, error=self._describe(exc))
        return Outcome(done=done, delivered=done)

    def _describe(self, exc: OSError) -> str:
        code = errno.errorcode.get(exc.errno or 0, "")
        why = (exc.strerror or str(exc)) + (f" ({code})" if code else "")
        if exc.filename2 is not None:
            return f"cannot rename {exc.filename} to {exc.filename2}: {why}"
        return f"cannot write {exc.filename or self.path}: {why}"

    # -- the file ---------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._fd is not None:
            # Moved or removed behind our back (logrotate, someone clearing it):
            # carry on in a new file at `path` rather than in the old one.
            try:
                now = os.stat(self.path)
                ours = os.fstat(self._fd)
                same = (now.st_ino, now.st_dev) == (ours.st_ino, ours.st_dev)
            except OSError:
                same = False
            if not same:
                log.info("sink %s: %s was moved or removed; starting a new file",
                         self.name, self.path)
                self._close_quietly()
        if self._fd is None:
            self._open()

    def _open(self) -> None:
        try:
            fd = os.open(self.path, _OPEN_FLAGS, 0o644)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, _OPEN_FLAGS, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                log.warning("sink %s: %s ends in a partial line (a write was interrupted); "
                            "ending it with a newline so the next line is whole. The "
                            "interrupted batch was not confirmed and is written again.",
                            self.name, self.path)
                self._write_all(fd, b"\n")
                size += 1
            if size == 0 and self.config.fsync:
                self._sync_folder()  # the new file's name is durable too
        except OSError:
            os.close(fd)
            raise
        self._fd, self._size = fd, size

    def _write_out(self, chunk: list[bytes]) -> None:
        if not chunk:
            return
        assert self._fd is not None
        self._size += self._write_all(self._fd, b"".join(chunk))
        if self.config.fsync:
            os.fsync(self._fd)

    @staticmethod
    def _write_all(fd: int, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return len(data)

    def _rotate(self) -> None:
        self._close()
        keep = self.config.keep
        oldest = self._numbered(keep) if keep else self.path
        try:
            os.unlink(oldest)
            log.info("sink %s: removed %s (keep: %d rotated files)", self.name, oldest, keep)
        except FileNotFoundError:
            pass
        for n in range(keep - 1, -1, -1):
            try:
                os.replace(self._numbered(n), self._numbered(n + 1))
            except FileNotFoundError:
                pass
        if self.config.fsync:
            self._sync_folder()
        self._open()

    def _numbered(self, n: int) -> Path:
        return self.path if n == 0 else self.path.with_name(f"{self.path.name}.{n}")

    def _sync_folder(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _close_quietly(self) -> None:
        try:
            self._close()
        except OSError:
            pass
