"""A thread of the gateway's own that the supervisor watches (gateway.app.supervise).

`start()` runs `work()` in a daemon thread; an exception there (a bug) ends the
thread, is logged with its traceback and kept in `failure`, where the gateway's
watch finds it and may `start()` the worker again. `stop()` asks `work()` to end
(`_stop` is set and `wake()` interrupts whatever it waits on) and waits for it.
"""

from __future__ import annotations

import logging
import threading
from typing import ClassVar

log = logging.getLogger("gateway")


class Worker:
    #: the thread's name, and what the log calls it when it dies
    thread_name: ClassVar[str] = "worker"
    what: ClassVar[str] = "a worker thread"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: an exception that broke the thread: the supervisor restarts it
        self.failure: BaseException | None = None

    def start(self) -> None:
        self.failure = None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Interrupt what `work()` waits on, if `_stop` alone does not."""

    def work(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            self.work()
        except BaseException as exc:
            self.failure = exc
            log.critical("%s died", self.what, exc_info=exc)
