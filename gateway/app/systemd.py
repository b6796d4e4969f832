"""Telling systemd how the service is (sd_notify, through sdnotify), for `Type=notify`:

- `READY=1` once the gateway really serves: the store open, ingest and the sinks
  running, the sources started and the local broker connected, or READY_WAIT
  seconds gone trying (systemd starts what comes after it only then, and the
  installer waits for it before it calls an upgrade good);
- `STATUS=...` every couple of seconds: what `systemctl status` shows on its
  "Status:" line (readings stored, each sink's backlog, what is wrong);
- `WATCHDOG=1` at half `WatchdogSec=`, only while the event loop runs, ingest is
  neither dead nor stuck in one commit or housekeeping round for `STUCK` seconds,
  and every sink's task runs: a wedged process stops pinging and systemd restarts it;
- `STOPPING=1` when it begins to stop.

Without `NOTIFY_SOCKET` (not run by systemd) nothing is sent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from sdnotify import SystemdNotifier

#: seconds ingest may spend in one commit or housekeeping round before it counts as stuck
STUCK = 120.0
#: seconds READY=1 waits for the local broker's connection (then it is sent anyway)
READY_WAIT = 10


class ServiceManager:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self.notifier = SystemdNotifier() if self.enabled else None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        #: seconds between pings (half of WatchdogSec=), or 0 when no watchdog is asked for
        self.ping_every = int(usec) / 2e6 if usec.isdigit() and mine else 0.0
        self.last_status = ""

    def _send(self, text: str) -> None:
        if self.notifier is not None:
            self.notifier.notify(text)

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")
        self.last_status = status

    def status(self, status: str) -> None:
        if status != self.last_status:
            self._send(f"STATUS={status}")
            self.last_status = status

    def alive(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=stopping: committing and acknowledging what has "
                   "arrived")
