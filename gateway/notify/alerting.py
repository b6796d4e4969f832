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
from gateway.notify.board import AlertBoard
from gateway.notify.dispatch import Dispatcher
from gateway.notify.downtime import Downtimes
from gateway.notify.indicator import Indicator
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
                                    self.dispatcher, self.journal, clock, stats, self.bookings,
                                    base_tags=device_tags)
        self.sender = Sender(self.journal, {p.name: p for p in config.people},
                             config.alerting, clock, stats)
        self.monitor_names = [m.name for m in config.monitors]
        self.board: AlertBoard | None = None
        if config.alerting.board:
            prefix = config.alerting.topic_prefix or f"gateway/{config.gateway.name}"
            self.board = AlertBoard(config.mqtt, config.client_id, prefix, self.acknowledge)
        self.dispatcher.after_record = self._recorded
        a = config.alerting
        self.indicator = Indicator(a.lamp_pin, a.buzzer_pin) \
            if a.lamp_pin is not None or a.buzzer_pin is not None else None
        self.critical = {m.name for m in config.monitors if m.safety_critical}
        self.sender.after_round = self.show

    def acknowledge(self, alert: int, by: str, via: str) -> str:
        """I'm on it, from the CLI, the HTTP endpoint or the MQTT command topic: no more
        reminders or escalation for this alert. Returns what happened, in words."""
        done = self.journal.acknowledge(alert, by, self.engine.clock.now(), via)
        if done is None:
            return f"no open alert #{alert}"
        self.show()
        return f"#{done.id} {done.monitor} on {done.grp} acknowledged by {done.acked_by} " \
               f"(via {via})"

    def open_alerts(self) -> list[dict[str, object]]:
        return [a.summary() for a in self.journal.alerts()]

    def _recorded(self) -> None:
        """A change was recorded: the sender goes at once, the board shows it."""
        self.sender.wake()
        self.show()

    def show(self) -> None:
        """The open alerts where people in the hall see them: the broker, the lamp."""
        open_ = self.open_alerts() if self.board or self.indicator else []
        if self.board is not None:
            self.board.show(open_, self.monitor_names)
        if self.indicator is not None:
            failing, _ = self.journal.failing()
            self.indicator.show(len(open_), failing, sum(
                1 for a in open_ if a["monitor"] in self.critical and not a["acked_by"]))

    def start(self) -> None:
        if self.board is not None:
            self.board.start()
        self.show()
        if self.bookings is not None:
            self.bookings.refresh()  # before the first judgement: the gates need it
            self.bookings.start()
        self.engine.start()
        self.sender.start()

    def stop(self) -> None:
        if self.bookings is not None:
            self.bookings.stop(timeout=0)  # a calendar URL may hang: not waited for
        self.engine.stop()
        self.sender.stop()
        if self.board is not None:
            self.board.stop()
        if self.indicator is not None:
            self.indicator.close()
        # alerts.db stays open: status (and the demo's last screen) still reads it

    def status(self) -> dict[str, object]:
        return {
            "open": self.open_alerts(),
            "on_duty": self.rota.on_duty(self.engine.clock.now()),
            "pending_notifications": self.journal.pending(),
            "failing": dict(zip(("count", "since"), self.journal.failing(), strict=True)),
            "bookings": None if self.bookings is None else {
                "known": len(self.bookings.known), "read_at": self.bookings.read_at,
                "problem": self.bookings.problem},
        }
