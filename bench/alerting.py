"""Alerting benchmark: how fast a notification leaves, what the monitors cost ingest, and
what they hold in memory.

Prints, in one run:
  latency   200 monitors over 500 devices (threshold, state and no_data, every monitor on
            every device), fed committed readings at the hall-like `--rate` per device
            through the monitors' real thread, rota, alerts.db and sender thread. Some
            readings cross a threshold, some devices lose power for a state monitor's
            duration. Measured: from the reading's commit (the fan-out call) to the
            notification handed to the channel (the sender's delivery call), and from a
            condition's duration elapsing to the hand-off; p50, p99, max against the
            1 s target
  memory    the monitors' stores (window buckets, latest values, heard times) for that
            load: points, and bytes counted by tracemalloc, per group and in total
  ingest    bench/ingest.py (Mosquitto, the gateway process, VictoriaMetrics) with
            and without those 200 monitors, on the same 500 configured devices (50 of
            them publishing), alternated `--rounds` times in this run: readings/s each,
            and the ratio against the 10 % target

    .venv/bin/python bench/alerting.py [--monitors 200] [--devices 500] [--seconds 20]
                                       [--rate 1] [--rounds 2] [--messages 50000]
                                       [--skip-ingest]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import monitors_yaml

from gateway.clock import Clock
from gateway.config.load import parse_config
from gateway.health.stats import Stats
from gateway.model import Reading
from gateway.notify.alerting import Alerting
from gateway.notify.channel import Delivery

METRICS = ("plug.power", "plug.voltage", "plug.current", "plug.energy_today")


def latency(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-alerting-"))
    devices = [f"plug{i:03d}" for i in range(args.devices)]
    text = ("gateway: {name: bench}\ndevices:\n"
            + "\n".join(f"  - {{id: {d}, profile: tasmota, topic: {d}}}" for d in devices)
            + "\n" + monitors_yaml(args.monitors).replace("alerting: {board: false}",
                                                          "alerting: {board: false}"))
    # Crossing levels: the bench's monitors use levels no reading reaches; add reachable
    # ones, one of each kind, so notifications happen.
    text += ("  - {name: hot, type: threshold, metric: plug.power, aggregation: last, "
             "window: 1m, critical: 3000}\n"
             "  - {name: dead, type: state, metric: plug.current, below: 0.001, "
             "duration: 5s}\n")
    config = parse_config(text, str(work / "gateway.yaml"))
    tags = {d: {"device": d, "gateway": "bench"} for d in devices}
    handed: list[tuple[float, str, str]] = []  # (when, title, person)
    lock = threading.Lock()

    def deliver(url: str, title: str, body: str) -> Delivery:
        with lock:
            handed.append((time.monotonic(), title, url))
        return Delivery(True, "bench")

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    alerting = Alerting(config, work / "data", Clock(), Stats(), tags)
    alerting.sender.deliver = deliver
    alerting.start()
    engine = alerting.engine
    committed: dict[str, float] = {}  # "hot:<device>" / "dead:<device>" -> when it began
    sent_batches = 0
    start = time.monotonic()
    step = 0.1  # a commit every 0.1 s, as the ingest stage does under steady input
    per_batch = max(1, int(args.devices * args.rate * step))
    i = 0
    try:
        while time.monotonic() - start < args.seconds:
            tick = time.monotonic()
            now = time.time()
            batch = []
            for _ in range(per_batch):
                device = devices[i % len(devices)]
                i += 1
                hot = i % 199 == 0 and f"hot:{device}" not in committed
                dead = i % 499 == 0 and f"dead:{device}" not in committed
                power = 3500.0 if hot else 40.0
                current = 0.0 if (dead or f"dead:{device}" in committed) else 0.2
                batch += [Reading("plug.power", power, now, "gauge", "W", tags[device]),
                          Reading("plug.voltage", 238.0, now, "gauge", "V", tags[device]),
                          Reading("plug.current", current, now, "gauge", "A", tags[device]),
                          Reading("plug.energy_today", 0.5, now, "gauge", "kWh",
                                  tags[device])]
                if hot:
                    committed[f"hot:{device}"] = time.monotonic()
                if dead:
                    committed[f"dead:{device}"] = time.monotonic() + 5.0  # duration elapses
            engine.committed(batch)
            sent_batches += 1
            time.sleep(max(0.0, step - (time.monotonic() - tick)))
        time.sleep(6.0)  # let the last durations elapse and the sender finish
    finally:
        after = tracemalloc.take_snapshot()
        alerting.stop()
    delays: dict[str, list[float]] = {"hot": [], "dead": []}
    seen: set[tuple[str, str]] = set()
    for when, title, _ in handed:
        m = re.match(r"\[(\w[\w ]*)\] (\w+) on device:(\S+)", title)
        if not m or m.group(1) not in ("ALERT", "WARN"):
            continue
        kind, device = m.group(2), m.group(3)
        begun = committed.get(f"{kind}:{device}")
        if begun is None or (kind, device) in seen:
            continue
        seen.add((kind, device))
        delays[kind].append(when - begun)
    readings = sent_batches * per_batch * len(METRICS)
    print(f"# {args.monitors} monitors (+2 that fire) over {args.devices} devices; "
          f"{readings:,} readings in {sent_batches} commits over {args.seconds:.0f} s "
          f"({readings / args.seconds:,.0f} readings/s); {len(handed)} notifications handed "
          "to the channel", flush=True)
    for kind, what in (("hot", "reading committed -> notification handed over "
                                "(threshold)"),
                       ("dead", "duration elapsed -> notification handed over (state)")):
        d = sorted(delays[kind])
        if not d:
            print(f"latency   {what}: none measured")
            continue
        p99 = d[min(len(d) - 1, int(len(d) * 0.99))]
        print(f"latency   {what}: n {len(d)}, p50 {statistics.median(d) * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {d[-1] * 1000:.0f} ms; target p99 <= 1000 ms: "
              f"{'met' if p99 <= 1.0 else 'NOT met'}")
    stats = after.compare_to(before, "filename")
    stores = sum(s.size_diff for s in stats
                 if "gateway/monitors/series" in str(s.traceback)
                 or "gateway/monitors/evaluate" in str(s.traceback))
    groups = sum(len(s.groups) if hasattr(s, "groups") else len(s.series)  # type: ignore
                 for ss in engine.stores.values() for s in ss)
    print(f"memory    stores hold {engine.points():,} points for {groups:,} groups "
          f"(+{len(engine.heard.any)} devices heard); {stores / 1e6:.2f} MB allocated by "
          f"the stores and evaluators = {stores / max(1, groups):,.0f} B per group; "
          f"monitor states kept: {len(engine.states)} (only groups that were ever not OK)")


def ingest(args: argparse.Namespace) -> None:
    runs: dict[str, list[float]] = {"without": [], "with": []}
    for r in range(args.rounds):
        for label in ("without", "with"):
            # the same devices both ways (500 configured, 50 publishing): only the
            # monitors differ
            extra = ["--devices", str(args.devices)]
            if label == "with":
                extra += ["--monitors", str(args.monitors)]
            out = subprocess.run([sys.executable, str(ROOT / "bench" / "ingest.py"),
                                  "--messages", str(args.messages), *extra],
                                 capture_output=True, text=True, timeout=900).stdout
            m = re.search(r"= ([\d,]+) readings/s", out)
            if not m:
                print(out)
                raise SystemExit("bench/ingest.py printed no rate")
            rate = float(m.group(1).replace(",", ""))
            runs[label].append(rate)
            print(f"ingest    round {r + 1} {label:>7} monitors: {rate:,.0f} readings/s",
                  flush=True)
    without, with_ = statistics.mean(runs["without"]), statistics.mean(runs["with"])
    cost = 1 - with_ / without
    print(f"ingest    mean {without:,.0f} readings/s without, {with_:,.0f} with "
          f"{args.monitors} monitors: ratio {with_ / without:.2f}, cost {cost * 100:.0f} % "
          f"(target <= 10 %: {'met' if cost <= 0.10 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--monitors", type=int, default=200)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=1.0,
                        help="readings rounds per device per second in the latency part")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--skip-ingest", action="store_true")
    args = parser.parse_args()
    latency(args)
    if not args.skip_ingest:
        ingest(args)


if __name__ == "__main__":
    main()
