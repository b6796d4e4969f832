"""SD-card benchmark: bytes written, CPU and latency per reading at a hall's message rates.

SD cards on Pis die of small writes. This runs the real gateway (`gateway run`, as
systemd would) on 50 Tasmota plugs with one upstream MQTT sink, and for each
durability (`full`, `normal`) and rate (2, 20, 200 msg/s) prints, over a steady
window:

  written   bytes the gateway process caused to be written to storage
            (/proc/<pid>/io write_bytes: page-cache pages dirtied, 4 KiB each),
            per second and per reading
  CPU       user + system time of the gateway process, as % of one core
  latency   device publish -> the reading arriving at the upstream broker's
            subscriber: p50, p99, max

Baseline, measured in the same run on the same brokers and plugs: a minimal
durable forwarder (`--naive`, in a process of its own) that commits each message
to SQLite (WAL, synchronous FULL) before acknowledging it, republishes it upstream
and deletes it on PUBACK: one outbox row per message, no decoding. The ratios
show what the gateway's store costs against that.

    .venv/bin/python bench/sdcard.py [--rates 2,20,200] [--durability full,normal]
                                     [--seconds 60] [--devices 50]

The store lives under data/bench-sdcard (a real file system: /tmp may be tmpfs,
where nothing counts as written).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt

from tests.programs.gateway import GatewayProcess
from tests.programs.mosquitto import Mosquitto

READINGS_PER_MESSAGE = 9  # the ENERGY block below, as a Tasmota plug sends it
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sensor(n: int) -> bytes:
    """A Tasmota plug's tele/<topic>/SENSOR; Power carries the message number."""
    return json.dumps({
        "Time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
        "ENERGY": {"TotalStartTime": "2025-01-04T09:12:44", "Total": 512.417 + n / 1000,
                   "Yesterday": 1.203, "Today": 0.521, "Period": 1, "Power": n,
                   "ApparentPower": 52, "ReactivePower": 35, "Factor": 0.73,
                   "Voltage": 238, "Current": 0.218}}).encode()


def topic(i: int) -> str:
    return f"plug_{i:02d}"


# -- what a process costs ----------------------------------------------------------------

def io_written(pid: int) -> int:
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError(f"no write_bytes for pid {pid}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


# -- the plugs and the upstream subscriber ------------------------------------------------

class Plugs:
    """`devices` plugs over a few connections, publishing numbered SENSOR messages."""

    def __init__(self, port: int, devices: int, prefix: str = "") -> None:
        self.devices = devices
        self.prefix = prefix
        self.sent: dict[tuple[str, int], float] = {}
        self.clients = []
        for k in range(min(10, devices)):
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-plugs-{k}")
            c.connect("127.0.0.1", port)
            c.loop_start()
            self.clients.append(c)
        self.n = 0

    def run(self, rate: float, seconds: float) -> int:
        """Publish at `rate` messages a second, round-robin over the plugs. Returns count."""
        start = time.monotonic()
        count = int(rate * seconds)
        for k in range(count):
            due = start + k / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.n += 1
            device = topic(self.n % self.devices)
            self.sent[(device, self.n)] = time.time()
            client = self.clients[self.n % len(self.clients)]
            client.publish(f"{self.prefix}tele/{device}/SENSOR", sensor(self.n), qos=1)
        return count

    def close(self) -> None:
        for c in self.clients:
            c.disconnect()
            c.loop_stop()


class Upstream:
    """Subscribes at the upstream broker; notes when each message's power reading came."""

    def __init__(self, port: int, subscription: str) -> None:
        self.arrived: dict[tuple[str, int], float] = {}
        self.lock = threading.Lock()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-upstream")
        c.on_message = self._on_message
        c.connect("127.0.0.1", port)
        c.subscribe(subscription, qos=1)
        c.loop_start()
        self.client = c

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = time.time()
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(body, dict) and body.get("metric") == "plug.power":  # the gateway
            key = (body["tags"]["device"].replace("-", "_"), int(body["value"]))
        elif isinstance(body, dict) and "ENERGY" in body:  # the naive forwarder
            key = (msg.topic.split("/")[-2], int(body["ENERGY"]["Power"]))
        else:
            return
        with self.lock:
            self.arrived.setdefault(key, now)

    def latencies(self, sent: dict[tuple[str, int], float],
                  keys: list[tuple[str, int]]) -> list[float]:
        with self.lock:
            return [self.arrived[k] - sent[k] for k in keys if k in self.arrived]

    def wait_for(self, keys: list[tuple[str, int]], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(k in self.arrived for k in keys):
                    return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- the baseline: a minimal durable forwarder --------------------------------------------

def naive_forwarder(broker: int, upstream: int, db: Path) -> None:
    """Commit each message, then acknowledge it; republish; delete the row on PUBACK."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY, topic TEXT, "
                 "payload BLOB)")
    lock = threading.Lock()  # the connection, and the two maps, between the two threads
    up = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-up-{db.stem}")
    pending: dict[int, int] = {}  # publish mid -> outbox row
    early: set[int] = set()  # PUBACKs that came before their mid was noted

    def on_publish(client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with lock:
            row = pending.pop(mid, None)
            if row is None:
                early.add(mid)
            else:
                conn.execute("DELETE FROM outbox WHERE id = ?", (row,))

    up.on_publish = on_publish
    up.connect("127.0.0.1", upstream)
    up.loop_start()
    down = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-naive-{db.stem}",
                       clean_session=False, manual_ack=True)

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        with lock:
            row = int(conn.execute("INSERT INTO outbox (topic, payload) VALUES (?, ?)",
                                   (msg.topic, bytes(msg.payload))).lastrowid or 0)
        client.ack(msg.mid, msg.qos)  # committed: the broker may forget it
        # Not under the lock: paho takes its own locks, and on_publish takes ours.
        info = up.publish(f"naive/{msg.topic}", msg.payload, qos=1)
        with lock:
            if info.mid in early:
                early.discard(info.mid)
                conn.execute("DELETE FROM outbox WHERE id = ?", (row,))
            else:
                pending[info.mid] = row

    down.on_message = on_message
    down.connect("127.0.0.1", broker)
    down.subscribe("tele/+/SENSOR", qos=1)
    print("ready", flush=True)
    down.loop_forever()


# -- one measurement ----------------------------------------------------------------------

@dataclass
class Figures:
    label: str
    rate: float
    seconds: float
    messages: int
    written: int
    cpu: float
    latencies: list[float]

    @property
    def readings(self) -> int:
        return self.messages * READINGS_PER_MESSAGE

    @property
    def per_reading(self) -> float:
        return self.written / self.readings

    @property
    def kib_s(self) -> float:
        return self.written / 1024 / self.seconds

    @property
    def cpu_pct(self) -> float:
        return 100 * self.cpu / self.seconds

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def line(self) -> str:
        lost = self.messages - len(self.latencies)
        return (f"{self.label:<16} {self.rate:>6g} msg/s  written {self.kib_s:8.1f} KiB/s "
                f"{self.per_reading:8.0f} B/reading   CPU {self.cpu_pct:5.2f} % of a core   "
                f"latency p50 {self.pct(0.5):5.3f} s p99 {self.pct(0.99):5.3f} s "
                f"max {max(self.latencies, default=float('nan')):5.3f} s"
                + (f"   {lost} not arrived" if lost else ""))


def measure(label: str, pid: int, plugs: Plugs, upstream: Upstream, rate: float,
            seconds: float, warmup: float) -> Figures:
    # Every plug reports once first, as in a hall that has run a while: a device's first
    # message makes its series in the store, which a steady state does not pay for.
    plugs.run(max(rate, 50.0), plugs.devices / max(rate, 50.0))
    plugs.run(rate, warmup)
    first = plugs.n + 1
    written, cpu, started = io_written(pid), cpu_seconds(pid), time.monotonic()
    count = plugs.run(rate, seconds)
    keys = [(topic(n % plugs.devices), n) for n in range(first, first + count)]
    upstream.wait_for(keys, 30)
    # The window ends a publishing interval after the last message (or on its arrival,
    # if later), so periodic work is counted in proportion.
    time.sleep(max(0.0, started + seconds + 1 / rate - time.monotonic()))
    elapsed = time.monotonic() - started
    return Figures(label, rate, elapsed, count, io_written(pid) - written,
                   cpu_seconds(pid) - cpu, upstream.latencies(plugs.sent, keys))


def gateway_config(broker: Mosquitto, upstream: Mosquitto, devices: int,
                   durability: str, run: str) -> dict[str, Any]:
    # A client id of its own per run: a persistent session left by an earlier run
    # would hand this one that run's queued messages, numbered as this run's are.
    return {
        "gateway": {"name": "bench-hall"},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": f"bench-{run}"},
        "store": {"durability": durability},
        "devices": [{"id": topic(i).replace("_", "-"), "profile": "tasmota", "topic": topic(i)}
                    for i in range(devices)],
        "sinks": [{"name": "upstream", "type": "mqtt", "host": "127.0.0.1",
                   "port": upstream.port}],
    }


def run_gateway(work: Path, broker: Mosquitto, upstream: Mosquitto, args: argparse.Namespace,
                durability: str, rate: float) -> Figures:
    folder = work / f"gateway-{durability}-{rate:g}"
    shutil.rmtree(folder, ignore_errors=True)
    gw = GatewayProcess(folder, gateway_config(broker, upstream, args.devices, durability,
                                               folder.name))
    sub = Upstream(upstream.port, "gateway/#")
    plugs = Plugs(broker.port, args.devices)
    try:
        gw.start()
        assert gw.proc is not None
        return measure(f"gateway {durability}", gw.proc.pid, plugs, sub, rate,
                       args.seconds, args.warmup)
    finally:
        plugs.close()
        sub.close()
        gw.stop()


def run_naive(work: Path, broker: Mosquitto, upstream: Mosquitto, args: argparse.Namespace,
              rate: float) -> Figures:
    db = work / f"naive-{rate:g}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, __file__, "--naive", str(broker.port),
                             str(upstream.port), str(db)], stdout=subprocess.PIPE, text=True)
    sub = Upstream(upstream.port, "naive/#")
    plugs = Plugs(broker.port, args.devices)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return measure("naive outbox", proc.pid, plugs, sub, rate, args.seconds, args.warmup)
    finally:
        plugs.close()
        sub.close()
        proc.terminate()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="2,20,200")
    parser.add_argument("--durability", default="full,normal")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window per run")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--work", default=str(ROOT / "data" / "bench-sdcard"))
    parser.add_argument("--naive", nargs=3, metavar=("BROKER", "UPSTREAM", "DB"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive:
        naive_forwarder(int(args.naive[0]), int(args.naive[1]), Path(args.naive[2]))
        return 0
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)  # no broker sessions left from an earlier run
    work.mkdir(parents=True)
    rates = [float(r) for r in args.rates.split(",")]
    modes = args.durability.split(",")
    print(f"SD-card benchmark: {args.devices} Tasmota plugs ({READINGS_PER_MESSAGE} readings a "
          f"message), one upstream MQTT sink, {args.seconds:g} s windows; store in {work}",
          flush=True)
    rows: list[tuple[Figures, Figures]] = []
    broker = Mosquitto(work / "broker")
    upstream = Mosquitto(work / "upstream")
    broker.start()
    upstream.start()
    try:
        for rate in rates:
            naive = run_naive(work, broker, upstream, args, rate)
            print(naive.line(), flush=True)
            for mode in modes:
                figures = run_gateway(work, broker, upstream, args, mode, rate)
                print(figures.line(), flush=True)
                rows.append((figures, naive))
    finally:
        broker.close()
        upstream.close()
    print("\n| durability | rate | written | per reading | vs naive outbox | CPU | vs naive "
          "| latency p50 / p99 |")
    print("|---|---|---|---|---|---|---|---|")
    for g, n in rows:
        print(f"| `{g.label.split()[-1]}` | {g.rate:g} msg/s | {g.kib_s:.1f} KiB/s | "
              f"{g.per_reading:,.0f} B | {g.per_reading / n.per_reading:.2f} × | "
              f"{g.cpu_pct:.2f} % | {g.cpu_pct / n.cpu_pct:.2f} × | "
              f"{g.pct(0.5):.2f} / {g.pct(0.99):.2f} s |")
    medians = statistics.median([g.pct(0.99) for g, _ in rows]) if rows else 0
    print(f"\n(median p99 latency over the runs: {medians:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
