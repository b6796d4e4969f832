"""Every thread and task the gateway starts is watched: none dies unseen.

A death (an exception nothing below expected: a bug) is logged with its
traceback, counted as `gateway.component_deaths{component}`, listed in
`/status` (`deaths`) and in `gateway status`. Then, by what the component holds:

- a **forwarder** or the **self-metrics** loop is restarted in place after a
  pause: all it has is its cursor in the store, so it resumes where it was
  (a batch in flight is sent again: at least once). More than
  `RESTART_LIMIT` deaths within `RESTART_WINDOW` is not a passing fault: the
  gateway stops with exit status 1.
- the **ingest** thread or a **source** makes the gateway stop with exit
  status 1 at once, for systemd (`Restart=on-failure`) to start a fresh
  process. What they hold is the broker's window of unacknowledged messages
  and a connection's state; a fresh process is the one clean restart of those,
  and the broker sends again everything not acknowledged, so nothing accepted
  is lost and nothing unaccepted was acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.clock import Clock
from gateway.health.stats import Stats

log = logging.getLogger("gateway")

#: restarts in place allowed within the window before the gateway gives up
RESTART_LIMIT = 5
RESTART_WINDOW = 600.0
#: pause before a restart in place (seconds), doubled for each death in the window
RESTART_PAUSE = 1.0
#: deaths kept for status
KEPT = 20


class Supervisor:
    """Records deaths and decides: restart in place, or stop the gateway (exit 1)."""

    def __init__(self, stats: Stats, clock: Clock, stop: Callable[[], None]) -> None:
        self.stats = stats
        self.clock = clock
        self._stop = stop
        self.deaths: list[dict[str, Any]] = []
        #: 1 once a death made the gateway stop: the process's exit status
        self.exit_status = 0
        self._recent: dict[str, list[float]] = {}

    def died(self, component: str, exc: BaseException, restart: bool) -> bool:
        """Record a death; True if the component may be restarted in place."""
        now = self.clock.monotonic()
        recent = [t for t in self._recent.get(component, []) if now - t < RESTART_WINDOW]
        recent.append(now)
        self._recent[component] = recent
        gives_up = not restart or len(recent) > RESTART_LIMIT
        what = ("stopping the gateway (exit status 1) for systemd to start it afresh; the "
                "broker keeps what was not acknowledged" if gives_up else
                f"restarting it (death {len(recent)} of {RESTART_LIMIT} allowed within "
                f"{RESTART_WINDOW / 60:.0f} min)")
        log.critical("%s died: %s: %s; %s", component, type(exc).__name__, exc, what,
                     exc_info=(type(exc), exc, exc.__traceback__))
        self.stats.inc("gateway.component_deaths", component=component)
        self.deaths.insert(0, {
            "component": component, "at": self.clock.now(),
            "error": f"{type(exc).__name__}: {str(exc)[:300]}",
            "where": "".join(traceback.format_tb(exc.__traceback__, limit=-1)).strip()[:300],
            "action": "stopped the gateway" if gives_up else "restarted"})
        del self.deaths[KEPT:]
        if gives_up:
            self.exit_status = 1
            self._stop()
        return not gives_up

    async def keep_running(self, component: str,
                           run: Callable[[], Awaitable[None]]) -> None:
        """Run `run()` until it returns; restart it after a pause each time it dies."""
        while True:
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the point: no death goes unseen
                if not self.died(component, exc, restart=True):
                    return
                pause = RESTART_PAUSE * 2 ** (len(self._recent[component]) - 1)
                await self.clock.asleep(pause)
