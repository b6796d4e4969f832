"""One gateway per store: an exclusive lock on `<data_dir>/gateway.lock` while it runs.

Two gateways on one store would both acknowledge messages and move each other's
cursors. The lock is an flock: the kernel drops it when the process dies, so a
crash never leaves a stale lock behind. `gateway store vacuum` and `check
--repair` take it too, so they never run under a running gateway.
"""

from __future__ import annotations

import fcntl
import os
import re
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


def holder(data_dir: Path) -> int | None:
    """The pid of the process holding the store's lock, or None when nobody holds it.

    Asks the kernel (/proc/locks) rather than taking the lock, even for a moment:
    a `gateway status` run by a monitoring script must never make a gateway that
    is starting at that instant refuse to start. The lock file's "pid N" alone is
    not enough: it outlives a killed gateway, and its pid may be reused.
    """
    path = Path(data_dir) / LOCK_NAME
    try:
        st = os.stat(path)
        written = re.match(r"pid (\d+)", path.read_text(errors="replace"))
    except OSError:
        return None
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            table = locks.read()
    except OSError:
        # No /proc/locks: trust the file if that process still exists.
        if written is None:
            return None
        pid = int(written.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # it exists, run by another user
        return pid
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"; "->" lines are waiters.
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == dev:
            try:
                return int(parts[4])
            except ValueError:
                return None
    return None
