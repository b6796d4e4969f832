"""The running gateway: builds every part from the config and starts/stops them in order.

Start: store lock -> store check (a damaged store is moved aside and salvaged)
-> ingest thread -> forwarders -> status endpoint -> MQTT source.
Stop:  ingest commits and acknowledges what it holds -> source disconnects ->
forwarders finish their request -> store closed. Anything the broker sent
after the last commit is unacknowledged, so the broker sends it again next time.

If ingest finds the store damaged while running, the gateway stops as above
(nothing more is acknowledged) and `run_forever` starts it again, which checks
and salvages the store: the broker resends what was not acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway import __version__
from gateway.app.gates import make_gate
from gateway.app.httpapi import StatusServer
from gateway.app.learned import remember_learned
from gateway.app.statusled import StatusLed, led_state
from gateway.app.supervise import Supervisor
from gateway.app.systemd import READY_WAIT, STUCK, ServiceManager
from gateway.clock import Clock
from gateway.config.load import data_dir
from gateway.config.schema import Config
from gateway.forward.forwarder import Backoff, Forwarder
from gateway.health.selfmetrics import SelfMetrics
from gateway.health.stats import Stats
from gateway.ingest.fanout import OnCommit
from gateway.ingest.pipeline import Ingest
from gateway.ingest.trips import Trips
from gateway.notify.alerting import Alerting
from gateway.profiles.decoder import Decoder
from gateway.profiles.devicetime import TimePolicy
from gateway.profiles.library import ProfileLibrary
from gateway.sinks.base import SinkContext
from gateway.sinks.registry import make_sink
from gateway.sources.base import Source, SourceContext
from gateway.sources.checks import ChecksSource
from gateway.sources.mqtt import SESSION_RECORD, MqttSource
from gateway.sources.registry import make_source
from gateway.state.latest import LatestValues
from gateway.store.inflight import InFlight
from gateway.store.lock import StoreBusy, StoreLock
from gateway.store.outbox import Backlog, Outbox
from gateway.store.recovery import check_and_recover

log = logging.getLogger("gateway")


class Gateway:
    """One gateway process."""

    def __init__(self, config: Config, config_dir: Path = Path("."),
                 clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock = clock or Clock(config.gateway.timezone)
        self.started = clock.now()
        self.data_dir = data_dir(config, config_dir)
        self.stats = Stats()
        self.library = ProfileLibrary.for_config(config, config_dir)
        gw = config.gateway
        self.decoder = Decoder(config.devices, self.library, gw.name, gw.tags,
                               config.mqtt.max_payload_bytes,
                               config.mqtt.max_readings_per_message,
                               TimePolicy.from_config(config))
        remember_learned(self.decoder, self.data_dir)
        store = config.store
        self.inflight = InFlight()
        self.ingest = Ingest(self._outbox, self.decoder, self.stats, store.commit_interval,
                             store.commit_rows, config.mqtt.receive_maximum, store,
                             self.inflight, clock)
        if config.trips is not None:
            self.ingest.trips = Trips(config.trips.ignition, config.trips.devices,
                                      self.data_dir, clock)
        self.latest = LatestValues(self.decoder.base_tags)
        self.ingest.fanout.add(self.latest)
        self.source = MqttSource(config.mqtt, config.client_id, self.decoder.subscriptions(),
                                 self.ingest.submit, self.stats, clock,
                                 self.data_dir / SESSION_RECORD)
        #: every source of raw messages: the local broker's (also `source`: its session and
        #: connection are shown in status), then each `sources[]` entry's
        context = SourceContext(gw.name, clock, self.data_dir, self.stats, self.ingest.submit)
        self.sources: list[Source] = [self.source]
        self.sources.extend(make_source(s, context) for s in config.sources)
        if config.checks:
            self.sources.append(ChecksSource(
                config.checks, config_dir, clock, self.stats, self.ingest.submit,
                {"system": {"data_dir": str(self.data_dir)},
                 "network": {"targets": sink_targets(config)}}))
        self.forwarders = [
            Forwarder(make_sink(s, SinkContext(gw.name, clock, self.data_dir)), self._outbox,
                      self.stats,
                      s.batch_size, s.timeout, Backoff(s.backoff_min, s.backoff_max),
                      inflight=self.inflight, max_age=s.max_age, clock=clock,
                      gate=make_gate(s.forward_when, self.latest, clock)
                      if s.forward_when is not None else None)
            for s in config.sinks
        ]
        #: monitors and notifications, when any monitor is configured
        self.alerting: Alerting | None = None
        if config.monitors:
            self.alerting = Alerting(config, self.data_dir, clock, self.stats,
                                     self.decoder.base_tags, config_dir)
            self.ingest.fanout.add(self.alerting.engine)
        self.self_metrics = SelfMetrics(gw.name, gw.tags)
        self.backlogs: list[Backlog] = []
        self.losses: dict[tuple[str, str, str], int] = {}
        self.dead_letters: dict[tuple[str, str], int] = {}
        self.http: StatusServer | None = None
        self.lock = StoreLock(self.data_dir)
        self.store_events: list[tuple[float, str, str]] = []
        #: set when the gateway stopped itself to recover a damaged store
        self.restart_for_recovery = False
        self._stop = asyncio.Event()
        self.supervisor = Supervisor(self.stats, clock, self.request_stop)
        #: the LED on the box (gateway.status_led_pin), lit once the gateway runs
        self.status_led: StatusLed | None = None
        #: systemd's notify socket, when run as a Type=notify service
        self.service = ServiceManager()
        self._sink_tasks: list[asyncio.Task[None]] = []
        self._told_wedged = False

    def _outbox(self) -> Outbox:
        return Outbox(self.data_dir, self.config.store.durability, clock=self.clock)

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run until request_stop() (or SIGTERM/SIGINT when installed)."""
        self.lock.acquire()  # StoreBusy: another gateway runs on this store
        try:
            await self._run()
        finally:
            self.lock.release()

    async def _run(self) -> None:
        salvage = await asyncio.to_thread(check_and_recover, self.data_dir,
                                          self.config.store.check_on_start, None, self.clock)
        if salvage is not None:
            self.stats.inc("gateway.store_recovered")
            lost = max(salvage.lost.values(), default=0)
            if lost:
                self.stats.inc("gateway.store_salvage_lost", lost)
        writer = await asyncio.to_thread(self._outbox)
        gone = writer.register_sinks([s.name for s in self.config.sinks])
        for name in gone:
            log.warning("sink %r is no longer configured: its cursor was removed, so readings "
                        "waiting only for it can be purged", name)
        self.store_events = writer.events()
        writer.close()
        reader = await asyncio.to_thread(self._outbox)
        loop = asyncio.get_running_loop()

        def wake_forwarders() -> None:
            for f in self.forwarders:
                loop.call_soon_threadsafe(f.notify)

        self.ingest.fanout.add(OnCommit(wake_forwarders))
        for f in self.forwarders:
            f.on_corrupt = self.store_damaged
        self.ingest.start()
        tasks = [asyncio.create_task(self.supervisor.keep_running(f"sink {f.sink.name}", f.run),
                                     name=f"sink-{f.sink.name}")
                 for f in self.forwarders]
        self._sink_tasks = tasks
        http = self.config.gateway.http
        if http.enabled:
            token = self.config.alerting.ack_token
            self.http = StatusServer(http.host, http.port, self.stats, self.status,
                                     self._prometheus_extra, self.health,
                                     self.alerting.acknowledge if self.alerting else None,
                                     str(token) if token else None)
            try:
                await self.http.start()
            except OSError as exc:
                log.error("status endpoint %s:%s not started: %s", http.host, http.port, exc)
                self.http = None
        if self.alerting is not None:
            # In a worker thread: it reads the bookings calendar first (a URL may be slow).
            await asyncio.to_thread(self.alerting.start)
        for source in self.sources:
            source.start()
        if self.config.gateway.status_led_pin is not None:
            self.status_led = StatusLed(self.config.gateway.status_led_pin)
        log.info("gateway %s %s running: %d device(s), %d topic filter(s), sinks: %s; store %s",
                 self.config.gateway.name, __version__, len(self.config.devices),
                 len(self.decoder.subscriptions()),
                 ", ".join(s.name for s in self.config.sinks) or "none",
                 reader.path)
        metrics_task = asyncio.create_task(self.supervisor.keep_running(
            "self-metrics", lambda: self._self_metrics_loop(reader)))
        watch_task = asyncio.create_task(self._watch())
        try:
            # Ready once it serves; the broker, started before it (After=mosquitto.service),
            # is given a few seconds so systemd hears "running", not a connection under
            # way. A broker that stays away does not hold the start: the status says so.
            for _ in range(READY_WAIT * 10):
                if self.source.connected.is_set() or self._stop.is_set():
                    break
                await self.clock.asleep(0.1)
            self.service.ready(self._service_status(self.health()))
            await self._stop.wait()
        finally:
            log.info("stopping: committing and acknowledging what has arrived")
            self.service.stopping()
            metrics_task.cancel()
            watch_task.cancel()
            await asyncio.to_thread(self.ingest.stop)
            for source in self.sources:
                await asyncio.to_thread(source.stop)
            if self.status_led is not None:
                self.status_led.close()
            if self.alerting is not None:
                await asyncio.to_thread(self.alerting.stop)
            for f in self.forwarders:
                f.stop()
            _, pending = await asyncio.wait(tasks, timeout=10) if tasks else (set(), set())
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
            if self.http is not None:
                await self.http.stop()
            reader.close()
            log.info("stopped")

    async def _watch(self) -> None:
        """Watch the ingest thread and the sources (the tasks watch themselves): a damaged
        store restarts the gateway to salvage it; a death stops it (gateway.app.supervise)."""
        while True:
            if self.ingest.stopped.is_set():
                if self.ingest.corrupt is not None:
                    self.store_damaged()
                elif self.ingest.died is not None:
                    self.supervisor.died("ingest", self.ingest.died, restart=False)
                return
            for source in self.sources:
                if source.failure is not None:
                    self.supervisor.died(f"source {source.name}", source.failure,
                                         restart=False)
                    return
            if self.alerting is not None:
                # Their state is in alerts.db: a fresh thread picks up where one left off.
                for name, part in (("monitors", self.alerting.engine),
                                   ("notify-sender", self.alerting.sender)):
                    if part.failure is not None:
                        if not self.supervisor.died(name, part.failure, restart=True):
                            return
                        part.start()
            await self.clock.asleep(0.5)

    def store_damaged(self) -> None:
        """The store is damaged: stop (acknowledging nothing more) and start again, which
        moves it aside and salvages it. The broker resends what was not acknowledged."""
        if self._stop.is_set():
            return
        log.critical("the store is damaged: restarting to move it aside and salvage it "
                     "(the broker keeps what was not acknowledged)")
        self.restart_for_recovery = True
        self.request_stop()

    async def _refresh_store_figures(self, reader: Outbox) -> None:
        try:
            positions = {f.sink.name: f.position for f in self.forwarders}

            def read() -> None:  # one trip to a worker thread for the three
                self.backlogs = reader.backlogs(positions, self.inflight.reshaped)
                self.losses = reader.losses_by_priority()
                self.dead_letters = reader.dead_letter_counts()

            await asyncio.to_thread(read)
        except Exception as exc:  # noqa: BLE001 - keep reporting; the store may be busy
            log.warning("cannot read backlog: %s", exc)

    async def _self_metrics_loop(self, reader: Outbox) -> None:
        """Backlog figures every 2 s (for /status), self-metric readings every interval."""
        interval = self.config.gateway.self_metrics_interval
        due = 0.0
        while True:
            await self._refresh_store_figures(reader)
            for source in self.sources:
                source.tick()
            # What is wrong, asked once a round for both the LED and systemd.
            trouble = self.health()
            if self.status_led is not None:
                self._show_led(trouble)
            self._tell_systemd(trouble)
            now = self.clock.monotonic()
            if now >= due:
                due = now + interval
                readings = self.self_metrics.collect(self.stats, self.backlogs, self.clock.now())
                self.ingest.submit_readings(readings)
            await self.clock.asleep(min(2.0, interval))

    def _backlog_rows(self) -> dict[str, int]:
        return {b.sink: b.rows for b in self.backlogs}

    def _service_status(self, trouble: list[str]) -> str:
        """systemctl status's one line: what is wrong, else what is stored and waits."""
        if trouble:
            return "degraded: " + "; ".join(trouble)[:300]
        rows = self._backlog_rows()
        waits = ", ".join(f"{f.sink.name} {rows.get(f.sink.name, 0)}" for f in self.forwarders)
        return (f"running: {self.stats.total('gateway.stored'):.0f} readings stored"
                + (f"; backlog {waits}" if waits else ""))

    def _tell_systemd(self, trouble: list[str]) -> None:
        """STATUS= every round; WATCHDOG=1 only while every part is alive."""
        self.service.status(self._service_status(trouble))
        if not self.service.ping_every:
            return
        busy = self.ingest.busy_since
        stuck = busy is not None and self.clock.monotonic() - busy > STUCK
        ingest_alive = self.ingest.died is None and not self.ingest.stopped.is_set()
        sinks_alive = all(not t.done() for t in self._sink_tasks)
        if ingest_alive and not stuck and sinks_alive:
            self.service.alive()
            self._told_wedged = False
        elif not self._told_wedged:
            self._told_wedged = True
            log.error("no watchdog ping: %s; systemd restarts the gateway when WatchdogSec= "
                      "runs out", "ingest is stuck in one commit" if stuck else
                      "ingest is not running" if not ingest_alive else "a sink has stopped")

    def _show_led(self, trouble: list[str]) -> None:
        assert self.status_led is not None
        rows = self._backlog_rows()
        sinks = [{"state": f.state, "backlog_rows": rows.get(f.sink.name, 0)}
                 for f in self.forwarders]
        alerts = len(self.alerting.open_alerts()) if self.alerting is not None else 0
        self.status_led.show(led_state(trouble, sinks, alerts))

    def _prometheus_extra(self) -> list[tuple[str, dict[str, str], float]]:
        now = self.clock.now()
        out = []
        for b in self.backlogs:
            out.append(("gateway.backlog_rows", {"sink": b.sink}, float(b.rows)))
            out.append(("gateway.backlog_oldest_age_seconds", {"sink": b.sink}, b.age(now)))
        return out

    def health(self) -> list[str]:
        """Why the gateway cannot take readings now ([] when it can): for /health/ready,
        and the first reasons `gateway status` gives for being degraded."""
        out = []
        if self.ingest.died is not None:
            out.append(f"ingest died ({type(self.ingest.died).__name__}: "
                       f"{str(self.ingest.died)[:200]}): the gateway stops for a fresh start")
        elif self.ingest.stopped.is_set():
            out.append("ingest has stopped (the store is damaged: the gateway restarts to "
                       "salvage it)")
        elif not self.ingest.store_ok.is_set():
            out.append(f"the store cannot be written ({self.ingest.store_fault or 'error'}): "
                       "nothing is acknowledged, the broker keeps the messages")
        out.extend(source.problem() for source in self.sources if not source.ready())
        out.extend(f"source {source.name} died ({type(source.failure).__name__}): the gateway "
                   "stops for a fresh start" for source in self.sources
                   if source.failure is not None)
        return out

    def status(self) -> dict[str, Any]:
        """What `gateway status` shows for a running gateway."""
        s = self.stats
        now = self.clock.now()
        backlog = {b.sink: b for b in self.backlogs}
        sinks = []
        for f in self.forwarders:
            name = f.sink.name
            b = backlog.get(name)
            dropped = {dict(lbl).get("reason", ""): v for lbl, v in
                       s.counters.get("gateway.dropped", {}).items()
                       if dict(lbl).get("sink") == name}
            sinks.append({
                "name": name, "type": type(f.sink).__name__, "confirms": f.sink.confirms,
                "state": f.state, "last_error": f.last_error,
                "backlog_rows": b.rows if b else None,
                "oldest_age": b.age(now) if b else 0.0,
                "delivered": s.get("gateway.delivered", sink=name),
                "failures": s.get("gateway.sink_failures", sink=name),
                "merged": s.get("gateway.sink_merged", sink=name),
                "dropped": dropped,
            })
        undecodable = {dict(lbl).get("reason", ""): v for lbl, v in
                       s.counters.get("gateway.undecodable", {}).items()}
        field_problems = {dict(lbl).get("reason", ""): v for lbl, v in
                          s.counters.get("gateway.field_problems", {}).items()}
        return {
            "gateway": self.config.gateway.name, "version": __version__, "running": True,
            "health": self.health(),
            "pid": os.getpid(), "uptime": now - self.started, "store": str(self.data_dir),
            "mqtt": {"broker": f"{self.config.mqtt.host}:{self.config.mqtt.port}",
                     "connected": bool(s.get("gateway.mqtt_connected")),
                     "subscribed": self.source.subscribed.is_set(),
                     "topics": len(self.decoder.subscriptions()),
                     "sessions_lost": s.total("gateway.mqtt_session_lost")},
            "sources": [{"name": src.name, "type": src.kind, "ready": src.ready(),
                         **src.status()} for src in self.sources[1:]],
            **({"trip": self.ingest.trips.current} if self.ingest.trips is not None else {}),
            "ingest": {"received": s.total("gateway.received"),
                       "decoded": s.total("gateway.decoded"),
                       "partly_decoded": s.total("gateway.partly_decoded"),
                       "ignored": s.total("gateway.ignored"),
                       "retained": s.total("gateway.retained"),
                       "device_time_rejected": {
                           f"{dict(lbl).get('device')}/{dict(lbl).get('reason')}": v
                           for lbl, v in s.counters.get("gateway.device_time_rejected",
                                                        {}).items()},
                       "stored": s.total("gateway.stored"),
                       "undecodable": undecodable,
                       "field_problems": field_problems,
                       "recent_problems": self.ingest.recent_problems,
                       "queue": s.get("gateway.ingest_queue"),
                       "store_writable": self.ingest.store_ok.is_set(),
                       "store_fault": self.ingest.store_fault},
            "store_space": self._space(),
            "sinks": sinks,
            "devices": self.latest.snapshot(),
            "losses_total": self._losses_total(),
            "losses_by_priority": {f"{sink}/{reason}/{priority or '-'}": n
                                   for (reason, sink, priority), n in self.losses.items()},
            "dead_letters": {f"{sink}/{reason}": n
                             for (sink, reason), n in self.dead_letters.items()},
            "store_events": [{"at": at, "kind": kind, "detail": detail}
                             for at, kind, detail in self.store_events[:5]],
            "deaths": self.supervisor.deaths,
            "alerts": self.alerting.status() if self.alerting is not None else None,
        }

    def _losses_total(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (reason, sink, _), n in self.losses.items():
            out[f"{sink}/{reason}"] = out.get(f"{sink}/{reason}", 0) + n
        return out

    def _space(self) -> dict[str, Any]:
        """The store's size against its budget, and what housekeeping has done."""
        s = self.stats
        evicted = {f"{dict(k).get('reason')}/{dict(k).get('priority')}": v
                   for k, v in s.counters.get("gateway.store_evicted", {}).items()}
        compacted = {dict(k).get("priority", ""): v
                     for k, v in s.counters.get("gateway.store_compacted", {}).items()}
        return {"bytes": s.get("gateway.store_bytes"),
                "file_bytes": s.get("gateway.store_file_bytes"),
                "budget_bytes": s.get("gateway.store_budget_bytes"),
                "fs_free_bytes": s.get("gateway.store_fs_free_bytes"),
                "evicted": evicted, "compacted": compacted}


#: a store damaged again and again (a failing card) is not recovered in a loop:
#: after this many recoveries in RECOVERY_WINDOW seconds the gateway exits non-zero
RECOVERY_LIMIT = 3
RECOVERY_WINDOW = 3600.0


def run_forever(config: Config, config_dir: Path, config_file: str | None = None) -> int:
    """Run the gateway until SIGTERM or SIGINT. Returns the exit status."""
    recoveries: list[float] = []
    clock = Clock(config.gateway.timezone)
    if config_file is not None:
        from gateway.config.load import config_warnings

        for warning in config_warnings(config, config_file):
            log.warning("%s: %s", config_file, warning)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        while True:
            gateway = Gateway(config, config_dir, clock)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, gateway.request_stop)
            try:
                await gateway.run()
            except StoreBusy as exc:
                log.error("%s", exc)
                return 1
            if not gateway.restart_for_recovery:
                return gateway.supervisor.exit_status
            now = clock.monotonic()
            recoveries[:] = [t for t in recoveries if now - t < RECOVERY_WINDOW] + [now]
            if len(recoveries) > RECOVERY_LIMIT:
                log.critical("the store was damaged %d times within %.0f minutes: the disk may "
                             "be failing. Stopping; see `gateway store check`.",
                             len(recoveries), RECOVERY_WINDOW / 60)
                return 1

    return asyncio.run(main())


def sink_targets(config: Config) -> list[str]:
    """host:port of every sink's destination: what the network check tries by default."""
    out = []
    for sink in config.sinks:
        url = getattr(sink, "url", None)
        if not url and getattr(sink, "site", None):
            url = f"https://api.{sink.site}"  # type: ignore[attr-defined]
        if url:
            parts = urlsplit(url)
            if parts.hostname:
                port = parts.port or (443 if parts.scheme == "https" else 80)
                out.append(f"{parts.hostname}:{port}")
        elif getattr(sink, "host", None):
            out.append(f"{sink.host}:{sink.port}")  # type: ignore[attr-defined]
    return list(dict.fromkeys(out))
