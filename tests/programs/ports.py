"""Free loopback ports and waiting for a listener to come up."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now.

    The kernel picks it (bind to port 0); the socket is closed before returning,
    so there is a small window in which another process could take it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    interval: float = 0.05,
    give_up: Callable[[], bool] | None = None,
) -> bool:
    """Poll ``condition`` until it is true (True) or ``timeout`` passes (False).

    ``give_up`` is checked between polls; when it returns true the wait ends early
    with False (for example: the process being waited for has exited).
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if give_up is not None and give_up():
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
