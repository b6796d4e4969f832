"""The alerting side of a gateway, assembled from the config: monitors, rota, the
notification outbox and its sender, all on alerts.db.

The gateway adds `engine` to the ingest stage's fan-out and starts and stops
this; nothing here reaches into sources, the store or the sinks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gateway.clock import Clock
from gateway.config.schema import Config
from gateway.health.stats import Stats
from gateway.monitors.bookings import Bookings
from gateway.monitors.engine import MonitorEngine
from gateway.notify.dispatch import Dispatcher
from gateway.notify.downtime import Downtimes
from gateway.notify.journal import Journal
from gateway.notify.rota import Rota
from gateway.notify.sender import Sender


class Alerting:
    def __init__(self, config: Config, data_dir: Path, clock: Clock, stats: Stats,
                 device_tags: Mapping[str, Mapping[str, str]],
                 config_dir: Path = Path(".")) -> None:
        self.journal = Journal(data_dir)
        self.bookings = None if config.bookings is None else \
            Bookings(config.bookings, config_dir, data_dir, clock)
        self.rota = Rota(config.people, clock)
        self.downtimes = Downtimes(config.downtimes, clock)
        self.dispatcher = Dispatcher(self.journal, self.rota, clock, config.gateway.name,
                                     device_tags, self.downtimes)
        self.engine = MonitorEngine(config.monitors, [d.id for d in config.devices],
                                    self.dispatcher, self.journal, clock, stats, self.bookings)
        self.sender = Sender(self.journal, {p.name: p for p in config.people},
                             config.alerting, clock, stats)

    def start(self) -> None:
        if self.bookings is not None:
            self.bookings.refresh()  # before the first judgement: the gates need it
            self.bookings.start()
        self.engine.start()
        self.sender.start()

    def stop(self) -> None:
        if self.bookings is not None:
            self.bookings.stop()
        self.engine.stop()
        self.sender.stop()
        self.journal.close()

    def status(self) -> dict[str, object]:
        return {
            "open": [{"monitor": m, "group": g, "status": s.status, "since": s.since,
                      "value": s.value} for m, g, s in self.engine.open()],
            "on_duty": self.rota.on_duty(self.engine.clock.now()),
            "pending_notifications": self.journal.pending(),
            "bookings": None if self.bookings is None else {
                "known": len(self.bookings.known), "read_at": self.bookings.read_at,
                "problem": self.bookings.problem},
        }
