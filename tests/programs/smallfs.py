"""A small real file system (tmpfs of a few MB) for disk-full tests: ENOSPC for real.

Mounting needs root (or CAP_SYS_ADMIN); `can_mount()` says whether this machine
allows it, so a test can say why it did not run.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path


def can_mount() -> bool:
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as d:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d],
                            capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", d], capture_output=True)
        return ok


class SmallFilesystem:
    """tmpfs of `size` bytes mounted at `path`; `fill()` leaves `leave` bytes free."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = Path(path)
        self.size = size
        self.filler = self.path / "filler"

    def __enter__(self) -> SmallFilesystem:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs",
                        str(self.path)], check=True, capture_output=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int) -> None:
        """Take all but `leave` bytes with a filler file (another program's logs, say)."""
        with open(self.filler, "ab") as f:
            while self.free() > leave:
                f.write(b"\0" * min(65536, max(4096, self.free() - leave)))
                f.flush()

    def make_room(self) -> None:
        """Space returns: the filler file is deleted."""
        self.filler.unlink(missing_ok=True)
