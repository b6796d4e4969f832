"""The notification outbox's sender: a thread that delivers what is due, and retries.

Each queued notification is for one person: their channels are tried in order
until one takes it (an e-mail that fails goes by Telegram). When none does (the
internet is down), it waits and tries again, from `alerting.retry_min` doubling
to `retry_max`; after `alerting.give_up_after` it is marked failed. Every
channel tried is an attempt in alerts.db, with its error text (no secrets).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from gateway.clock import Clock
from gateway.health.stats import Stats
from gateway.notify.channel import Delivery, send
from gateway.notify.config import AlertingSection, Person
from gateway.notify.journal import FAILED, PENDING, SENT, Due, Journal
from gateway.worker import Worker

log = logging.getLogger("gateway.notify")

Send = Callable[[str, str, str], Delivery]


class Sender(Worker):
    thread_name = "notify-sender"
    what = "the notification sender"

    def __init__(self, journal: Journal, people: Mapping[str, Person], config: AlertingSection,
                 clock: Clock, stats: Stats, deliver: Send = send) -> None:
        super().__init__()
        self.journal = journal
        self.people = people
        self.config = config
        self.clock = clock
        self.stats = stats
        self.deliver = deliver
        #: called after a round that tried something (the lamp shows what failed)
        self.after_round: Callable[[], None] = lambda: None
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def work(self) -> None:
        while not self._stop.is_set():
            self.send_due()
            nxt = self.journal.next_due()
            wait = 1.0 if nxt is None else min(1.0, max(0.0, nxt - self.clock.now()))
            self._wake.wait(wait)
            self._wake.clear()

    def send_due(self) -> int:
        """Deliver what is due now; returns how many were delivered."""
        delivered = 0
        due = self.journal.due(self.clock.now())
        for item in due:
            if self._stop.is_set():
                break
            delivered += self._send(item)
        if due:
            self.after_round()
        return delivered

    def _send(self, item: Due) -> int:
        person = self.people.get(item.person)
        now = self.clock.now()
        if person is None:
            self.journal.record_attempts(item.id, now, [], FAILED, now, None,
                                         f"no person {item.person!r} in people: any more")
            return 0
        tries = []
        for index, url in enumerate(person.channels):
            result = self.deliver(url, item.title, item.body)
            tries.append((index, result.service, result.ok, result.error))
            self.stats.inc("gateway.notifications", person=item.person,
                           result="sent" if result.ok else "failed")
            if result.ok:
                self.journal.record_attempts(item.id, self.clock.now(), tries, SENT, now,
                                             index, "")
                log.info("told %s (%s) of %s", item.person, result.service, item.title)
                return 1
            log.warning("could not tell %s by %s: %s", item.person, result.service,
                        result.error)
        error = "; ".join(f"{service}: {err}" for _, service, _, err in tries)
        attempts = item.attempts // max(1, len(person.channels)) + 1
        if now - item.created >= self.config.give_up_after:
            self.journal.record_attempts(item.id, now, tries, FAILED, now, None,
                                         f"gave up after {attempts} rounds: {error}")
            log.error("gave up telling %s of %s: %s", item.person, item.title, error)
            return 0
        delay = min(self.config.retry_max, self.config.retry_min * 2 ** (attempts - 1))
        self.journal.record_attempts(item.id, now, tries, PENDING, now + delay, None, error)
        return 0
