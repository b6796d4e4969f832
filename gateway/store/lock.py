"""One gateway per store: an exclusive lock on `<data_dir>/gateway.lock` while it runs.

Two gateways on one store would both acknowledge messages and move each other's
cursors. The lock is an flock: the kernel drops it when the process dies, so a
crash never leaves a stale lock behind. `gateway store vacuum` and `check
--repair` take it too, so they never run under a running gateway.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "gateway.lock"


class StoreBusy(RuntimeError):
    """Another process holds the store."""


class StoreLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreBusy(f"the store in {self.path.parent} is in use by {holder} "
                            "(a gateway is running on it); stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
