"""A pseudo-terminal standing in for a serial port: the simulator holds the master side,
a user (the gateway, pyserial, `cat`) opens the slave path as if it were /dev/ttyUSB0.

The slave is put in raw mode once (no echo, no CR/LF translation, no line editing):
bytes pass as on a real UART, and the setting stays for whoever opens it later. We
close our own slave descriptor straight away, so poll() on the master reports
POLLHUP whenever nobody has the port open: a device can tell "no reader" (its
bytes go nowhere, as on an unplugged cable) from "a reader that is behind".
The master is non-blocking: a device never waits for a slow reader unless it
asks to.
"""

from __future__ import annotations

import errno
import os
import select
import time
import tty
from pathlib import Path

from firmware_sim.devices.base import ScenarioError


class PseudoTerminal:
    """One simulated serial port. `path` is what users open; `link`, if given, points to it."""

    def __init__(self, link: str | None = None) -> None:
        master, slave = os.openpty()
        try:
            tty.setraw(slave)
            self.path = os.ttyname(slave)
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self.master: int | None = master
        self._poll = select.poll()
        self._poll.register(master, select.POLLIN)
        self.link = Path(link) if link else None
        if self.link is not None:
            self._make_link(self.link)

    def _make_link(self, link: Path) -> None:
        try:
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():
                link.unlink()  # left by an earlier run
            elif link.exists():
                raise ScenarioError(f"link {link}: something that is not a symlink is there "
                                    "already; choose another path")
            link.symlink_to(self.path)
        except OSError as exc:
            raise ScenarioError(f"link {link}: cannot make the symlink: {exc.strerror}") from None

    def reader_present(self) -> bool:
        """Whether anyone has the slave side open."""
        if self.master is None:
            return False
        return not any(ev & select.POLLHUP for _, ev in self._poll.poll(0))

    def read(self, timeout: float) -> bytes:
        """What the user wrote, waiting up to `timeout` seconds; b"" if nothing came."""
        if self.master is None:
            return b""
        events = self._poll.poll(timeout * 1000)
        if any(ev & select.POLLIN for _, ev in events):
            try:
                return os.read(self.master, 4096)
            except BlockingIOError:
                return b""
            except OSError as exc:
                if exc.errno != errno.EIO:  # EIO: the user closed the port meanwhile
                    raise
        if events:  # POLLHUP without data: nobody has the port open; poll() won't wait
            time.sleep(timeout)
        return b""

    def write(self, data: bytes, wait: float = 0.0) -> int:
        """Write what fits, waiting up to `wait` seconds for a slow reader; the count written.

        Whatever does not fit is dropped, as a UART's transmitter does not wait either.
        """
        if self.master is None:
            return 0
        done = 0
        deadline = time.monotonic() + wait
        while done < len(data):
            try:
                done += os.write(self.master, data[done:])
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno == errno.EIO:
                    break
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                break
            out = select.poll()
            out.register(self.master, select.POLLOUT)
            out.poll(min(left, 0.05) * 1000)
        return done

    def close(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None
        if self.link is not None and self.link.is_symlink():
            try:
                if os.readlink(self.link) == self.path:
                    self.link.unlink()
            except OSError:
                pass
