"""Outage benchmark: a 50-device village hall whose internet link is down for a week.

Prints, in one run, each figure with what it is compared against:
  week      the store after a simulated week of ingest with the link down: size on
            disk (file + WAL), readings stored, bytes per reading
  compact   the same store under a `store.max_bytes` budget the raw week does not fit
            in (default compaction rules, the gateway's own housekeeping rounds):
            bytes per reading before and after, rows the week became, readings those
            rows still stand for, readings evicted, size after (used and on disk)
  fsync     fsyncs per second of the real gateway (`gateway run`, fed over a real
            Mosquitto) at the hall's own message rate (a slice of the week replayed
            in real time) and at a burst rate (the week's messages published as fast
            as one QoS 1 client can), counted by `strace -f -c` attached to the
            gateway, for durability full and normal; baseline: full with
            commit_rows 1 (one transaction per message); and how many readings the
            gateway's own metrics add while the link is down
  drain     the week's backlog from the store into a real VictoriaMetrics once the
            link returns (the real gateway with an influx sink, started on the filled
            store): seconds, readings/s, the gateway's peak RSS; baseline: the same
            line protocol (same batches, gzip level 1) posted straight to another
            fresh VictoriaMetrics; reference: reading, encoding and posting it in one
            thread of this process

    .venv/bin/python bench/outage.py [--days 7] [--seed 1] [--budget 0.5] [--window 30]
                                     [--burst 10000] [--settle 10] [--quick] [--keep]

The week comes from the device simulator (firmware-sim): the hall in `hall_site`,
built from its Tasmota, Shelly, Zigbee2MQTT and ESPHome firmware models, runs in
simulated time (in a child process) with bookings and two mishaps; every message
goes through the gateway's real decoder and real `Outbox`, stamped with the
simulated clock and committed in the groups the ingest thread would make (0.25
simulated seconds after a batch's first message, or 5000 readings), with
`durability: normal` for speed (fsyncs do not change what is on disk). Nothing of
the week passes through MQTT except what the fsync phase replays. The week ends
at the last midnight (UTC), so runs on one day simulate the same week, and
VictoriaMetrics gets readings up to `--days` + 1 days old. `--quick` is a smoke run
(one day: too young for the 1-day compaction rule, so expect eviction there).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import multiprocessing as mp
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "firmware-sim"))

import paho.mqtt.client as mqtt
import yaml

from firmware_sim.network import Recording
from firmware_sim.runner import ScenarioRun
from firmware_sim.scenario import Booking, Event, Scenario
from firmware_sim.site import Site, gateway_devices
from gateway.clock import ManualClock
from gateway.config.load import parse_config
from gateway.config.schema import StoreSection
from gateway.config.validate import Bytes
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary
from gateway.sinks.lineprotocol import line, series_prefix
from gateway.store.bounds import measure
from gateway.store.housekeeping import VACUUM_STEP_PAGES, Housekeeper
from gateway.store.inflight import InFlight
from gateway.store.outbox import Outbox
from gateway.store.schema import READINGS
from tests.programs.gateway import GatewayProcess
from tests.programs.mosquitto import Mosquitto
from tests.programs.ports import free_port
from tests.programs.victoria import VictoriaMetrics

GATEWAY = "hall50"
HALL_TZ = ZoneInfo("Europe/London")
SINK = "vm"
#: the fill commits as the ingest thread does with the defaults (commit_interval 0.25 s
#: after a batch's first message, commit_rows 5000), in simulated time
FILL_COMMIT_SECONDS = StoreSection().commit_interval
FILL_COMMIT_ROWS = StoreSection().commit_rows
#: the simulator starts every device at the same instant, so devices with one period
#: publish in step (all 300 s plugs in the same second); real ones are not in step.
#: The real-time replay shifts each device by its own offset of up to this many seconds.
PHASE_SPREAD = 300.0
BATCH = 5000  # the influx sink's batch_size default: the baseline posts the same batches
MB = 1_000_000

# -- the hall ------------------------------------------------------------------------------

#: Tasmota TelePeriods of the 21 ordinary plugs: most keep the 300 s default, a few
#: were turned down by someone watching their energy use
TELEPERIODS = [10, 30, 30, 60, 60, 60, 60, 120, 120, 120, 120] + [300] * 10
ROOMS = ["main-hall", "kitchen", "committee-room", "stage", "foyer", "lobby", "store"]


def hall_site() -> Site:
    """Kilnwick village hall grown to 50 devices, made of the simulator's firmware models.

    22 Tasmota plugs (the defibrillator socket `critical`, TelePeriod 60 s; the
    others 10-300 s, every fifth a two-channel Shelly 2.5 on Tasmota), 10 Shelly
    Plus Plug S (NotifyStatus every minute and on power changes), 12 Zigbee bulbs
    (`low`) on two Zigbee2MQTT bridges, the ESPHome heating controller (`high`) and
    5 ESPHome room sensor nodes (temperature, Wi-Fi, uptime every 60 s: the same
    firmware model with a set point the hall never falls to, so they never drive
    the boiler).
    """
    devices: list[dict[str, Any]] = [
        {"id": "defib-socket", "kind": "tasmota", "topic": "defib_socket",
         "module": "Athom Plug V2", "priority": "critical", "teleperiod": 60,
         "tags": {"room": "entrance"}, "channels": [{"load": "defib-cabinet", "relay": True}]},
    ]
    for i, period in enumerate(TELEPERIODS):
        n = i + 1
        channels: list[dict[str, Any]]
        if n % 5 == 0:
            module, channels = "Shelly 2.5", [{"load": {"kind": "lights", "watts": 120}},
                                              {"load": {"kind": "lights", "watts": 60}}]
        elif n in (1, 8):
            module, channels = "Sonoff S31", [{"load": "urn"}]
        else:
            module = "Athom Plug V2"
            channels = [{"load": {"kind": "lights", "watts": 15 + 7 * n}, "relay": n % 3 == 0}]
        devices.append({"id": f"plug-{n:02d}", "kind": "tasmota", "topic": f"plug_{n:02d}",
                        "module": module, "teleperiod": period, "channels": channels,
                        "tags": {"room": ROOMS[i % len(ROOMS)]}})
    for i in range(10):
        n = i + 1
        load: Any = "sound-system" if n in (1, 6) else {"kind": "lights", "watts": 30 + 9 * n}
        devices.append({"id": f"shelly-{n:02d}", "kind": "shelly-plug",
                        "prefix": f"shellyplusplugs-hall{n:02d}", "load": load,
                        "relay": n % 2 == 1, "tags": {"room": ROOMS[(i + 3) % len(ROOMS)]}})
    for b in range(2):
        bulbs = [{"id": f"bulb-{6 * b + j + 1:02d}", "friendly_name": f"bulb_{6 * b + j + 1:02d}",
                  "priority": "low", "tags": {"room": ROOMS[(b * 6 + j) % len(ROOMS)]}}
                 for j in range(6)]
        devices.append({"id": f"zigbee-{b + 1}", "kind": "zigbee2mqtt", "version": 2,
                        "base_topic": "zigbee2mqtt" if b == 0 else "zigbee2mqtt_annexe",
                        "bulbs": bulbs})
    devices.append({"id": "heating", "kind": "esphome-heating", "node": "hall-heating",
                    "priority": "high", "comfort": 20, "setback": 12})
    for i in range(5):
        devices.append({"id": f"sensor-{i + 1}", "kind": "esphome-heating",
                        "node": f"room-sensor-{i + 1}", "comfort": 4, "setback": 4,
                        "tags": {"room": ROOMS[i]}})
    return Site("village-hall-50", "a 50-device village hall", "Europe/London",
                {"kind": "hall", "outside_mean": 6, "outside_swing": 4, "inside": 11,
                 "heater_watts": 15000},
                {"name": GATEWAY, "tags": {"site": "kilnwick"}}, tuple(devices),
                {"device": "heating", "preheat": "1h"})


def hall_scenario(days: float) -> Scenario:
    """The ordinary week's bookings in the bigger hall, a plug off the Wi-Fi, a bulb unplugged."""
    bookings = (
        Booking("Toddler group", "FREQ=WEEKLY;BYDAY=MO,WE,FR", "09:30", 7200, 25,
                ("plug-01", "plug-05:1", "shelly-02", "bulb-01", "bulb-02", "bulb-03")),
        Booking("Pilates", "FREQ=WEEKLY;BYDAY=TU,TH", "18:30", 3600, 12,
                ("plug-10", "bulb-04", "bulb-05")),
        Booking("Badminton", "FREQ=WEEKLY;BYDAY=WE", "19:30", 7200, 8,
                ("plug-05", "plug-15", "shelly-04", "bulb-07", "bulb-08")),
        Booking("Parish council", "FREQ=WEEKLY;BYDAY=TH", "19:30", 9000, 15,
                ("plug-08", "shelly-06", "bulb-09", "bulb-10")),
        Booking("Birthday party", "FREQ=WEEKLY;BYDAY=SA", "14:00", 14400, 40,
                ("plug-01", "plug-08", "plug-20", "shelly-01", "shelly-08", "bulb-01",
                 "bulb-02", "bulb-06", "bulb-11", "bulb-12")),
    )
    events = (
        Event(min(26 * 3600, days * 86400 * 0.3), "wifi-drop", "plug-04", {"for": 2400.0}),
        Event(min(4 * 86400, days * 86400 * 0.6), "unplug", "bulb-11", {"for": 3600.0}),
    )
    return Scenario("outage-week", "the hall while its link is down", hall_site(),
                    days * 86400, bookings, events)


def hall_devices() -> list[dict[str, Any]]:
    """The gateway `devices:` that read the hall (the simulator says which)."""
    return gateway_devices(hall_site())


# -- the week: simulator process -> decoder -> Outbox ---------------------------------------

class _Streamed(Recording):
    """A recording that hands messages on in batches instead of keeping them all."""

    def __init__(self, sim: Any, out: Any, keep_from: float, keep: int) -> None:
        super().__init__(sim)
        self.queue = out
        self.batch: list[tuple[float, str, bytes]] = []
        self.keep_from = keep_from
        self.keep = keep
        self.kept: list[tuple[float, str, bytes]] = []

    def add(self, client: str, msg: Any) -> None:
        item = (self.sim.now, msg.topic, msg.payload)
        self.batch.append(item)
        if len(self.batch) >= 5000:
            self.queue.put(self.batch)
            self.batch = []
        if self.sim.now >= self.keep_from and len(self.kept) < self.keep:
            self.kept.append(item)


def _simulate(days: float, seed: int, start: float, keep_from: float, keep: int,
              out: Any) -> None:
    run = ScenarioRun(hall_scenario(days), None, seed=seed,
                      start=datetime.fromtimestamp(start, UTC).isoformat())
    net = _Streamed(run.sim, out, keep_from, keep)
    run.network = net
    t0 = time.perf_counter()
    run.run()
    out.put(net.batch)
    out.put(("done", time.perf_counter() - t0, net.kept))


@dataclass
class Week:
    start: float
    end: float
    messages: int = 0  # reached the gateway's subscriptions
    published: int = 0  # everything the devices published (INFO1..3, bridge/... included)
    readings: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    by_priority: dict[str, int] = field(default_factory=dict)
    sim_seconds: float = 0.0
    fill_seconds: float = 0.0
    file: int = 0
    wal: int = 0
    used: int = 0
    kept: list[tuple[float, str, bytes]] = field(default_factory=list)  # for the replays
    devices: dict[str, str] = field(default_factory=dict)  # topic -> device, of those kept

    @property
    def on_disk(self) -> int:
        return self.file + self.wal


def make_decoder(devices: list[dict[str, Any]]) -> Decoder:
    config = parse_config(yaml.safe_dump({"gateway": {"name": GATEWAY,
                                                      "tags": {"site": "kilnwick"}},
                                          "devices": devices}))
    return Decoder(config.devices, ProfileLibrary.builtin(), config.gateway.name,
                   config.gateway.tags)


def fill_week(data_dir: Path, args: argparse.Namespace) -> Week:
    """Simulate the week in a child process; decode and append it here as it comes."""
    end = float(int(time.time()) // 86400 * 86400)  # last midnight (UTC): same week all day
    start = end - args.days * 86400
    week = Week(start, end)
    decoder = make_decoder(hall_devices())
    subscribed: dict[str, bool] = {}
    ctx = mp.get_context("fork")
    queue = ctx.Queue(maxsize=50)
    # The burst, and enough for the de-phased slice (a few are on topics not read).
    keep = max(args.burst, int((args.window + PHASE_SPREAD) * 3)) + 5000
    proc = ctx.Process(target=_simulate, args=(args.days, args.seed, start,
                                               start + args.days * 86400 / 2, keep, queue))
    t0 = time.perf_counter()
    proc.start()  # before the store is opened: a forked child must not inherit it
    outbox = Outbox(data_dir, "normal")
    outbox.register_sinks([SINK])  # the gateway had its sink configured all along
    batch: list[Any] = []
    first_ts = None

    def commit(readings: list[Any]) -> int:
        """One append and commit per batch, as the ingest thread does."""
        outbox.append(readings)
        return outbox.commit()

    while True:
        item = queue.get(timeout=900)
        if isinstance(item, tuple):
            _, week.sim_seconds, week.kept = item
            break
        week.published += len(item)
        for ts, topic, payload in item:
            ok = subscribed.get(topic)
            if ok is None:
                ok = subscribed[topic] = decoder.subscribed(topic)
            if not ok:
                continue
            if first_ts is not None and ts - first_ts >= FILL_COMMIT_SECONDS:
                week.readings += commit(batch)  # the batch's interval ended before this one
                batch, first_ts = [], None
            week.messages += 1
            decoded = decoder.decode(topic, payload, ts)
            for reason, _ in decoded.problems:
                week.problems[reason] += 1
            if not decoded.readings:
                continue
            batch.extend(decoded.readings)
            if first_ts is None:
                first_ts = ts
            if len(batch) >= FILL_COMMIT_ROWS:
                week.readings += commit(batch)
                batch, first_ts = [], None
    week.readings += commit(batch)
    proc.join()
    week.kept = [m for m in week.kept if subscribed.get(m[1])]
    week.devices = {m[1]: decoder.routes(m[1])[0][0].device.id for m in week.kept}
    week.fill_seconds = time.perf_counter() - t0
    # As the gateway's disk holds it at the end of the week: file and WAL as they are.
    path = outbox.path
    week.file = path.stat().st_size
    week.wal = Path(f"{path}-wal").stat().st_size if Path(f"{path}-wal").exists() else 0
    week.used = measure(outbox.conn, path, 2**62, 0).used
    for priority, table in READINGS.items():
        (n,) = outbox.conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        week.by_priority[priority] = int(n)
    stored = outbox.stored_rows()
    outbox.close()
    if stored != week.readings:
        print(f"!! store holds {stored} rows, {week.readings} readings were committed",
              flush=True)
    return week


# -- compaction under a budget ---------------------------------------------------------------

@dataclass
class Compacted:
    budget: int
    seconds: float
    rows: int
    rollup_rows: int
    stands_for: int  # readings the remaining rows hold (sum of samples)
    used: int
    file: int
    wal: int
    by_priority: dict[str, tuple[int, int]]  # priority -> (rows, readings held)
    compacted: Counter[str]
    evicted: Counter[tuple[str, str]]
    losses: dict[tuple[str, str], int]
    rounds: int


def copy_store(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("gateway.db", "gateway.db-wal"):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)


def budget_for(week: Week, fraction: float) -> int:
    """`fraction` of the raw week's used bytes, in whole MiB (at least 1 MiB)."""
    return max(1024**2, int(week.used * fraction) // 1024**2 * 1024**2)


def compact_week(data_dir: Path, week: Week, budget: int, round_seconds: float,
                 limit_seconds: float) -> Compacted:
    """Housekeeping rounds of `round_seconds` each, back to back as the ingest thread runs
    them while work is left, until one has nothing more to do; the clock stands at the
    end of the week. The gateway's rounds are 0.25 s (`Housekeeper.run`'s default)."""
    section = StoreSection(max_bytes=Bytes(budget), min_free_bytes=Bytes(0))
    outbox = Outbox(data_dir, "full")
    keeper = Housekeeper(outbox.conn, outbox.path, section, InFlight(), ManualClock(week.end))
    compacted: Counter[str] = Counter()
    evicted: Counter[tuple[str, str]] = Counter()
    t0 = time.perf_counter()
    rounds = 0
    while time.perf_counter() - t0 < limit_seconds:
        done = keeper.run(outbox.purge, round_seconds)
        rounds += 1
        compacted.update(done.compacted)
        evicted.update(done.evicted)
        # Free pages go back a step per round while pressure is low: wait for those too.
        if not done.busy and done.vacuumed_pages < VACUUM_STEP_PAGES:
            break
    seconds = time.perf_counter() - t0
    conn = outbox.conn
    by_priority = {}
    for priority, table in READINGS.items():
        rows, held = conn.execute(f"SELECT count(*), coalesce(sum(coalesce(u.samples, 1)), 0) "
                                  f"FROM {table} r LEFT JOIN rollups u ON u.id = r.id"
                                  ).fetchone()
        by_priority[priority] = (int(rows), int(held))
    (rollup_rows,) = conn.execute("SELECT count(*) FROM rollups").fetchone()
    space = measure(conn, outbox.path, budget, 0)
    wal = Path(f"{outbox.path}-wal")
    result = Compacted(budget, seconds, sum(r for r, _ in by_priority.values()), int(rollup_rows),
                       sum(h for _, h in by_priority.values()), space.used,
                       outbox.path.stat().st_size, wal.stat().st_size if wal.exists() else 0,
                       by_priority, compacted, evicted, outbox.losses(), rounds)
    outbox.close()
    return result


# -- the real gateway over a real Mosquitto: fsyncs ------------------------------------------

def realistic_slice(week: Week, window: float, seed: int) -> list[tuple[float, str, bytes]]:
    """`window` seconds of the middle of the week, each device shifted by its own offset
    (up to PHASE_SPREAD), so devices of one period no longer publish in the same second."""
    if not week.kept:
        return []
    mid = week.kept[0][0]
    offsets = {d: random.Random(f"{seed}:{d}").uniform(0, PHASE_SPREAD)
               for d in set(week.devices.values())}
    shifted = [(ts - offsets[week.devices[topic]], topic, payload)
               for ts, topic, payload in week.kept]
    return sorted(m for m in shifted if mid <= m[0] < mid + window)


def _publish(port: int, items: list[tuple[float, str, bytes]],
             pace: tuple[float, float] | None, out: Any) -> None:
    """One MQTT client publishing `items` at QoS 1, as fast as it can, or, with `pace`
    (window start, window length), at their own times from the window's start to its end.
    Puts (sent, missing PUBACKs) on `out`."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"outage-pub-{os.getpid()}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    wall0 = time.time()
    infos = []
    for ts, topic, payload in items:
        if pace is not None:
            wait = wall0 + (ts - pace[0]) - time.time()
            if wait > 0:
                time.sleep(wait)
        infos.append(c.publish(topic, payload, qos=1))
    if pace is not None and wall0 + pace[1] > time.time():
        time.sleep(wall0 + pace[1] - time.time())
    for info in infos:
        info.wait_for_publish(timeout=300)
    out.put((len(infos), sum(1 for i in infos if not i.is_published())))
    c.disconnect()
    c.loop_stop()


class Strace:
    """`strace -f -c -e trace=fsync,fdatasync` attached to a running process."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync",
                                      "-p", str(pid), "-o", str(out)],
                                     stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        line_ = self.proc.stderr.readline()  # "strace: Process N attached with M threads"
        if "attached" not in line_:
            raise RuntimeError(f"strace did not attach: {line_}{self.proc.stderr.read()}")
        self.started = time.monotonic()

    def stop(self) -> tuple[dict[str, int], float]:
        """Detach; returns calls by syscall and the seconds strace was attached."""
        self.proc.send_signal(signal.SIGINT)
        elapsed = time.monotonic() - self.started
        self.proc.communicate(timeout=30)
        calls: dict[str, int] = {}
        for row in self.out.read_text().splitlines():
            parts = row.split()
            if len(parts) >= 5 and parts[-1] in ("fsync", "fdatasync"):
                calls[parts[-1]] = int(parts[3])
        return calls, elapsed


@dataclass
class FsyncRun:
    label: str
    seconds: float
    messages: int
    fsyncs: int
    calls: dict[str, int]

    @property
    def rate(self) -> float:
        return self.fsyncs / self.seconds

    @property
    def msg_rate(self) -> float:
        return self.messages / self.seconds


def gateway_config(broker_port: int, client_id: str, sink_url: str,
                   store: dict[str, Any], sink: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "gateway": {"name": GATEWAY, "tags": {"site": "kilnwick"}, "timezone": "Europe/London"},
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": client_id},
        "store": store,
        "devices": hall_devices(),
        "sinks": [{"name": SINK, "type": "influx", "url": sink_url, **(sink or {})}],
    }


def _received(gw: GatewayProcess) -> int:
    s = gw.status()
    return int(s["ingest"]["received"]) if s else -1


def _wait_received(gw: GatewayProcess, target: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    got = _received(gw)
    while got < target and time.monotonic() < deadline:
        time.sleep(0.05)
        got = _received(gw)
    return got


def measure_fsyncs(work: Path, broker: Mosquitto, label: str, store: dict[str, Any],
                   slice_: list[tuple[float, str, bytes]], window: tuple[float, float],
                   burst: list[tuple[float, str, bytes]]) -> tuple[FsyncRun, FsyncRun]:
    """Start a gateway (its sink's link down), replay the slice in real time, then the
    burst as fast as it goes; strace counts fsyncs during each."""
    dead_link = f"http://127.0.0.1:{free_port()}"  # nothing listens: the link is down
    gw = GatewayProcess(work / label, gateway_config(broker.port, f"outage-{label}", dead_link,
                                                     store))
    gw.start()
    ctx = mp.get_context("fork")
    try:
        time.sleep(2.0)  # start-up writes (schema, first self-metrics) are not counted
        assert gw.proc is not None
        results = []
        for kind, items, pace in (("realistic", slice_, window), ("burst", burst, None)):
            before = _received(gw)
            strace = Strace(gw.proc.pid, work / f"strace-{label}-{kind}.txt")
            time.sleep(0.2)
            q = ctx.Queue()
            pub = ctx.Process(target=_publish, args=(broker.port, items, pace, q))
            pub.start()
            sent, missing = q.get(timeout=900)
            pub.join()
            got = _wait_received(gw, before + sent, 120) - before
            time.sleep(0.5)  # the last group commit
            calls, seconds = strace.stop()
            if missing or got < sent:
                print(f"!! {label} {kind}: {sent} sent, {missing} without PUBACK, "
                      f"{got} received by the gateway", flush=True)
            results.append(FsyncRun(f"{label} {kind}", seconds, got, sum(calls.values()), calls))
        return results[0], results[1]
    finally:
        gw.stop()


def own_readings(data_dir: Path) -> tuple[int, int]:
    """The gateway's own metric reports in a store: how many, and the readings in the
    largest (a report grows as counters appear: failures, undecodable reasons...)."""
    outbox = Outbox(data_dir, "full", readonly=True)
    try:
        per_report: Counter[int] = Counter()
        for table in READINGS.values():
            for second, n in outbox.conn.execute(
                    f"SELECT r.ts / 1000, count(*) FROM {table} r JOIN series s "
                    "ON s.id = r.series WHERE s.metric LIKE 'gateway.%' GROUP BY 1"):
                per_report[int(second)] += int(n)
        return len(per_report), max(per_report.values(), default=0)
    finally:
        outbox.close()


# -- drain: baseline and gateway ---------------------------------------------------------------

@dataclass
class Drain:
    readings: int
    seconds: float
    start_seconds: float = 0.0  # gateway: from launch to connected, on the filled store
    encode_seconds: float = 0.0  # baseline: reading the store and encoding (not timed in)
    body_bytes: int = 0
    requests: int = 0
    rss_start_mb: float = 0.0
    hwm_mb: float = 0.0
    rss_peak_sampled_mb: float = 0.0
    in_vm: int = 0
    invalid_in_vm: int = 0
    #: the store once drained, and `settle` seconds later: see store_disk
    after: tuple[int, int, int] = (0, 0, 0)
    later: tuple[int, int, int] = (0, 0, 0)
    settle: float = 0.0

    @property
    def rate(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0


def encode_batches(data_dir: Path) -> tuple[list[bytes], int, int]:
    """The store's rows as the influx sink encodes them, in its batches, gzipped as it
    does (level 1). Returns (bodies, readings, uncompressed bytes)."""
    outbox = Outbox(data_dir, "full", readonly=True)
    prefixes: dict[int, str] = {}
    bodies = []
    after, n, raw = 0, 0, 0
    while True:
        rows = outbox.rows_after(after, BATCH)
        if not rows:
            break
        out = []
        for r in rows:
            p = prefixes.get(r.series)
            if p is None:
                p = prefixes[r.series] = series_prefix(r.info)
            out.append(line(p, r.value, r.ts_ms))
        body = ("\n".join(out) + "\n").encode()
        raw += len(body)
        bodies.append(gzip.compress(body, compresslevel=1))
        n += len(rows)
        after = rows[-1].id
    outbox.close()
    return bodies, n, raw


def vm_rows(vm: VictoriaMetrics) -> tuple[int, int]:
    m = vm.self_metrics("vm_rows_")
    inserted = sum(v for k, v in m.items() if k.startswith("vm_rows_inserted_total")
                   and 'type="influx"' in k)
    invalid = sum(v for k, v in m.items() if k.startswith("vm_rows_invalid_total"))
    return int(inserted), int(invalid)


def drain_baseline(work: Path, data_dir: Path) -> Drain:
    t0 = time.perf_counter()
    bodies, n, raw = encode_batches(data_dir)
    encode = time.perf_counter() - t0
    vm = VictoriaMetrics(work / "vm-baseline")
    vm.start()
    try:
        conn = http.client.HTTPConnection(vm.host, vm.port, timeout=60)
        headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"}
        t0 = time.perf_counter()
        for body in bodies:
            conn.request("POST", "/write?precision=ms", body, headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status // 100 != 2:
                raise RuntimeError(f"VictoriaMetrics answered {resp.status}")
        seconds = time.perf_counter() - t0
        conn.close()
        vm.flush()
        in_vm, invalid = vm_rows(vm)
    finally:
        vm.stop()
    return Drain(n, seconds, encode_seconds=encode, body_bytes=raw, requests=len(bodies),
                 in_vm=in_vm, invalid_in_vm=invalid)


def _proc_kib(pid: int, key: str) -> int:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(key + ":"):
            return int(row.split()[1])
    return 0


def store_disk(data_dir: Path) -> tuple[int, int, int]:
    """(file + WAL on disk, bytes of free pages inside, pages in the database), read
    beside the running gateway (pages count what the WAL holds too)."""
    path = data_dir / "gateway.db"
    wal = Path(f"{path}-wal")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (page,) = conn.execute("PRAGMA page_size").fetchone()
        (free,) = conn.execute("PRAGMA freelist_count").fetchone()
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
    finally:
        conn.close()
    on_disk = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return on_disk, free * page, pages


def drain_gateway(work: Path, broker: Mosquitto, data_dir: Path, readings: int,
                  settle: float) -> Drain:
    """The gateway starts on the filled store with its link down; then VictoriaMetrics
    comes up and the backlog drains. Timed from VictoriaMetrics answering to the
    gateway reporting the week's readings delivered; then the store is watched for
    `settle` seconds more, in which housekeeping should give free pages back."""
    vm = VictoriaMetrics(work / "vm-gateway")
    config = gateway_config(broker.port, "outage-drain", vm.url, {},
                            {"backoff_min": 0.2, "backoff_max": 0.5})
    config["gateway"]["data_dir"] = str(data_dir)
    gw = GatewayProcess(work / "drain", config)
    t0 = time.perf_counter()
    gw.start(timeout=120)
    started = time.perf_counter() - t0
    assert gw.proc is not None
    pid = gw.proc.pid
    try:
        time.sleep(1.0)
        rss_start = _proc_kib(pid, "VmHWM") / 1024
        peak = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.1):
                try:
                    peak[0] = max(peak[0], _proc_kib(pid, "VmRSS"))
                except OSError:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        vm.start()
        t1 = time.perf_counter()
        delivered = 0
        while time.perf_counter() - t1 < 1800:
            s = gw.status()
            if s is not None:
                delivered = int(s["sinks"][0]["delivered"] or 0)
                if delivered >= readings:
                    break
            time.sleep(0.1)
        seconds = time.perf_counter() - t1
        stop.set()
        sampler.join()
        hwm = _proc_kib(pid, "VmHWM") / 1024
        if delivered < readings:
            print(f"!! drain: only {delivered} of {readings} delivered in {seconds:.0f} s",
                  flush=True)
        after = store_disk(data_dir)
        vm.flush()
        in_vm, invalid = vm_rows(vm)
        time.sleep(max(0.0, t1 + seconds + settle - time.perf_counter()))
        later = store_disk(data_dir)
    finally:
        gw.stop()
        vm.stop()
    return Drain(delivered, seconds, start_seconds=started, rss_start_mb=rss_start,
                 hwm_mb=hwm, rss_peak_sampled_mb=peak[0] / 1024, in_vm=in_vm,
                 invalid_in_vm=invalid, after=after, later=later, settle=settle)


# -- the run ---------------------------------------------------------------------------------

def mb(n: float) -> str:
    return f"{n / MB:.1f} MB"


def phase(name: str) -> Callable[[str], None]:
    """A printer of lines headed by the phase's name."""

    def say(text: str) -> None:
        print(f"{name:<9} {text}", flush=True)

    return say


Summary = list[tuple[str, str, str]]  # (figure, value, note) rows of the closing table


def report_week(week: Week, args: argparse.Namespace, summary: Summary) -> None:
    say = phase("week")
    seconds = week.end - week.start
    say(f"{week.published:,} messages published, {week.messages:,} on the gateway's topics "
        f"({week.messages / seconds:.2f} msg/s average), {week.readings:,} readings "
        f"({week.readings / seconds:.1f}/s); undecodable: {dict(week.problems) or 'none'}")
    say("readings by priority: " + ", ".join(f"{p} {n:,}" for p, n in
                                              week.by_priority.items()))
    say(f"simulated in {week.sim_seconds:.1f} s (child process); simulated, decoded and "
        f"appended in {week.fill_seconds:.1f} s ({week.readings / week.fill_seconds:,.0f} "
        "readings/s)")
    say(f"store on disk {mb(week.on_disk)} (file {mb(week.file)} + WAL {mb(week.wal)}); "
        f"{week.on_disk / week.readings:.1f} bytes per reading on disk, "
        f"{week.used / week.readings:.1f} counting used pages + WAL")
    summary.append(("store after the week (file + WAL)", mb(week.on_disk),
                    f"{week.readings:,} readings, {week.on_disk / week.readings:.1f} B/reading"))


def report_compaction(work: Path, week: Week, args: argparse.Namespace,
                      summary: Summary) -> None:
    say = phase("compact")
    budget = budget_for(week, args.budget)
    say(f"budget max_bytes {budget:,} ({budget / 1024**2:.0f} MiB = {args.budget:g} x the raw "
        f"week's {mb(week.used)} used, in whole MiB), compact_at 0.8, min_free_bytes 0, "
        "default rules (older than 1h -> 1m buckets, 1d -> 15m; critical 1d -> 1m); "
        "housekeeping's clock at the end of the week, on a copy of the week")
    copy_store(work / "week", work / "compacted")
    comp = compact_week(work / "compacted", week, budget, 0.25, args.compact_limit)
    say(f"{comp.rounds} rounds of 0.25 s (the gateway's) in {comp.seconds:.1f} s; rows removed "
        f"by compaction {dict(comp.compacted) or 'none'}; readings evicted "
        f"{ {f'{r}/{p}': n for (r, p), n in comp.evicted.items()} or 'none'}")
    say(f"rows {week.readings:,} -> {comp.rows:,} ({comp.rollup_rows:,} of them rollups), "
        f"standing for {comp.stands_for:,} readings: {week.readings - comp.stands_for:,} gone, "
        f"{sum(comp.losses.values()):,} counted as lost")
    say("by priority (rows / readings held): " + ", ".join(
        f"{p} {r:,}/{h:,}" for p, (r, h) in comp.by_priority.items()))
    before, after = week.used / week.readings, comp.used / week.readings
    say(f"bytes per reading of the week (used pages + WAL): {before:.1f} before, {after:.1f} "
        f"after; per stored row after {comp.used / max(comp.rows, 1):.1f}")
    say(f"store after: used {mb(comp.used)} ({comp.used / budget:.0%} of the budget); on disk "
        f"file {mb(comp.file)} + WAL {mb(comp.wal)} = {mb(comp.file + comp.wal)} (was "
        f"{mb(week.on_disk)}): free pages go back to the file system while the file is "
        "over its budget, and once a drained backlog leaves plenty")
    summary.append(("compaction budget (max_bytes)", mb(budget),
                    f"{args.budget:g} x the raw week"))
    summary.append(("bytes/reading before -> after", f"{before:.1f} -> {after:.1f}",
                    f"rows {week.readings:,} -> {comp.rows:,}; evicted "
                    f"{sum(comp.evicted.values()):,}"))
    summary.append(("store after compaction: used | on disk",
                    f"{mb(comp.used)} | {mb(comp.file + comp.wal)}", ""))


def report_fsyncs(work: Path, broker: Mosquitto, week: Week, args: argparse.Namespace,
                  summary: Summary) -> None:
    say = phase("fsync")
    slice_ = realistic_slice(week, args.window, args.seed)
    burst = week.kept[:args.burst]
    rows1_burst = burst[:max(500, args.burst // 5)]
    mid = week.kept[0][0]
    average = week.messages / (week.end - week.start)
    say(f"realistic: {len(slice_)} messages = {len(slice_) / args.window:.2f} msg/s (the "
        f"week's average: {average:.2f}), {args.window:g} s of the week's middle "
        f"({datetime.fromtimestamp(mid, HALL_TZ).strftime('%a %H:%M')}), each device shifted "
        f"by its own 0-{PHASE_SPREAD:.0f} s (the simulator runs all devices in step), "
        f"replayed in real time; burst: {len(burst):,} messages of the week (the next "
        f"{(burst[-1][0] - burst[0][0]) / 3600:.1f} h) as fast as one QoS 1 client goes "
        f"({len(rows1_burst):,} for commit_rows 1, whose rate is fsync-bound)")
    if shutil.which("strace") is None:
        say("strace is not installed: fsync figures skipped")
        return
    variants: list[tuple[str, dict[str, Any]]] = [
        ("full", {"durability": "full"}),
        ("normal", {"durability": "normal"}),
        ("full-rows1", {"durability": "full", "commit_rows": 1}),
    ]
    runs: dict[str, tuple[FsyncRun, FsyncRun]] = {}
    for label, store in variants:
        runs[label] = measure_fsyncs(work / "fsync", broker, label, store, slice_,
                                     (mid, args.window),
                                     rows1_burst if "commit_rows" in store else burst)
        for r in runs[label]:
            say(f"{r.label:<22} {r.messages:>6} msgs in {r.seconds:5.1f} s = "
                f"{r.msg_rate:7.1f} msg/s; {r.fsyncs:>6} fsyncs = {r.rate:7.1f}/s {r.calls}")
    base_real, base_burst = runs["full-rows1"]
    for label in ("full", "normal"):
        real, bur = runs[label]
        ratio = real.rate / max(base_real.rate, 1e-9)
        say(f"{label}: realistic {real.rate:.1f} fsyncs/s vs {base_real.rate:.1f} with one "
            f"transaction per message (ratio {ratio:.2f}); burst {bur.rate:.1f}/s at "
            f"{bur.msg_rate:,.0f} msg/s vs {base_burst.rate:.1f}/s at "
            f"{base_burst.msg_rate:,.0f} msg/s")
        summary.append((f"fsyncs/s {label}: realistic | burst",
                        f"{real.rate:.1f} | {bur.rate:.1f}",
                        f"at {real.msg_rate:.1f} | {bur.msg_rate:,.0f} msg/s"))
    summary.append(("fsyncs/s full, commit_rows 1 (baseline)",
                    f"{base_real.rate:.1f} | {base_burst.rate:.1f}",
                    f"at {base_real.msg_rate:.1f} | {base_burst.msg_rate:,.0f} msg/s"))
    say("(strace stops the gateway at every system call it makes, so burst msg/s here "
        "are lower than without it)")
    reports, largest = own_readings(work / "fsync" / "full" / "data")
    week_of_own = largest * 6 * 60 * 24 * 7
    say(f"self-metrics: {reports} reports (every 10 s) with the link down, the largest "
        f"{largest} readings: a week offline adds {week_of_own:,.0f} readings (priority low) "
        f"to the hall's {week.readings / args.days * 7:,.0f}; the week above does not "
        "include them")
    summary.append(("self-metric readings a week offline", f"{week_of_own:,.0f}",
                    f"{largest} per 10 s report, not in the week above"))


def report_drain(work: Path, broker: Mosquitto, week: Week, args: argparse.Namespace,
                 summary: Summary) -> None:
    say = phase("drain")
    base = drain_baseline(work, work / "week")
    say(f"baseline: {base.readings:,} readings as line protocol ({mb(base.body_bytes)} in "
        f"{base.requests} gzipped batches of {BATCH}; reading + encoding took "
        f"{base.encode_seconds:.1f} s, not timed) posted straight to VictoriaMetrics in "
        f"{base.seconds:.1f} s = {base.rate:,.0f} readings/s; VM inserted {base.in_vm:,}, "
        f"invalid {base.invalid_in_vm}")
    whole = base.encode_seconds + base.seconds
    say(f"reference: reading, encoding and posting in one thread, one after the other: "
        f"{whole:.1f} s = {base.readings / whole:,.0f} readings/s")
    gw = drain_gateway(work, broker, work / "week", week.readings, args.settle)
    say(f"gateway: started on the filled store in {gw.start_seconds:.1f} s (to MQTT "
        f"connected); drained {gw.readings:,} readings in {gw.seconds:.1f} s = "
        f"{gw.rate:,.0f} readings/s; ratio to baseline {gw.rate / base.rate:.2f}")
    say(f"gateway RSS: peak before VictoriaMetrics came up {gw.rss_start_mb:.1f} MB, peak "
        f"overall (VmHWM) {gw.hwm_mb:.1f} MB, highest sampled while draining "
        f"{gw.rss_peak_sampled_mb:.1f} MB; VM inserted {gw.in_vm:,} (the week plus the "
        f"gateway's own metrics), invalid {gw.invalid_in_vm}")
    given = gw.after[2] - gw.later[2]
    say(f"store once drained: {mb(gw.after[0])} on disk, {mb(gw.after[1])} of it free pages; "
        f"{gw.settle:g} s later {mb(gw.later[0])} on disk, {mb(gw.later[1])} free: {given} "
        f"pages given back in ~{gw.settle / 2:.0f} housekeeping rounds (each asks "
        f"incremental_vacuum for {VACUUM_STEP_PAGES})")
    summary.append(("drain: gateway", f"{gw.seconds:.1f} s",
                    f"{gw.rate:,.0f} readings/s, peak RSS {gw.hwm_mb:.0f} MB"))
    summary.append(("drain: baseline (straight POSTs)", f"{base.seconds:.1f} s",
                    f"{base.rate:,.0f} readings/s; ratio {gw.rate / base.rate:.2f}"))
    summary.append(("drain: read + encode + POST, one thread", f"{whole:.1f} s",
                    f"{base.readings / whole:,.0f} readings/s; ratio "
                    f"{gw.rate / (base.readings / whole):.2f}"))
    summary.append(("store on disk once drained | later",
                    f"{mb(gw.after[0])} | {mb(gw.later[0])}",
                    f"{mb(gw.later[1])} free inside, {gw.settle:g} s after the drain"))


def run(args: argparse.Namespace, command: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    t_run = time.perf_counter()
    print(f"# {command}", flush=True)
    print(f"# 50-device hall, {args.days:g} simulated day(s) offline, seed {args.seed}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start; "
          f"work dir {work}", flush=True)
    summary: Summary = []
    week = fill_week(work / "week", args)
    report_week(week, args, summary)
    report_compaction(work, week, args, summary)
    broker = Mosquitto(work / "mosquitto", max_queued_messages=200_000, autosave_interval=60)
    broker.start()
    try:
        report_fsyncs(work, broker, week, args, summary)
        report_drain(work, broker, week, args, summary)
    finally:
        broker.stop()
    print(f"\n# summary ({args.days:g} day(s), seed {args.seed}, run took "
          f"{time.perf_counter() - t_run:.0f} s, load average {os.getloadavg()[1]:.2f} over "
          f"the last 5 min): {command}")
    width = max(len(k) for k, _, _ in summary)
    vwidth = max(len(v) for _, v, _ in summary)
    for key, value, note in summary:
        print(f"{key:<{width}}  {value:>{vwidth}}  {note}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=7.0, help="simulated days offline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=float, default=0.5,
                        help="max_bytes as a fraction of the raw week's size")
    parser.add_argument("--window", type=float, default=30.0,
                        help="seconds of the week replayed in real time for fsyncs")
    parser.add_argument("--burst", type=int, default=10000, help="messages in the burst")
    parser.add_argument("--compact-limit", type=float, default=300.0,
                        help="give housekeeping at most this many seconds")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds to watch the store after the drain")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 day, 8 s window, 3000-message burst")
    args = parser.parse_args()
    if args.quick:
        args.days, args.window, args.burst = 1.0, 8.0, 3000
    command = " ".join([".venv/bin/python", "bench/outage.py", *sys.argv[1:]])
    run(args, command)


if __name__ == "__main__":
    main()
