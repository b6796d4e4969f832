"""Ingest benchmark: a burst of QoS 1 messages through Mosquitto into the gateway.

Prints, in one run and on the same broker settings:
  baseline   the receive rate of a bare paho-mqtt subscriber (auto PUBACK, no work)
  gateway    messages and readings accepted (committed to SQLite) per second, and the
             ratio to the baseline; messages lost
  drain      readings per second from the store to VictoriaMetrics, once it is started
  memory     the gateway's peak RSS while holding the whole burst as a backlog

    .venv/bin/python bench/ingest.py [--messages 100000] [--publishers 50] [--fields 10]
                                     [--monitors 0] [--devices 0]

Each message is a Tasmota tele/<topic>/SENSOR payload with `--fields` ENERGY values,
so readings = messages x fields. VictoriaMetrics is not running during the ingest
phase (the sink retries), so ingest and drain are measured separately; the burst
is then the backlog whose drain and memory are measured.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.programs.mosquitto import Mosquitto
from tests.programs.ports import free_port
from tests.programs.victoria import VictoriaMetrics

ENERGY_KEYS = ["Total", "Yesterday", "Today", "Power", "ApparentPower", "ReactivePower",
               "Factor", "Voltage", "Current", "Frequency"]
RECEIVE_MAXIMUM = 2000  # the gateway's default, so both subscribers get the same window


def payload(i: int, fields: int) -> bytes:
    energy = {k: round(i * 0.001 + n, 3) for n, k in enumerate(ENERGY_KEYS[:fields])}
    # The plug's own clock, as a Tasmota set to UTC sends it: the gateway reads it.
    now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    return json.dumps({"Time": now, "ENERGY": energy}).encode()


def _publisher(port: int, topics: list[str], per_client: int, fields: int,
               start: mp.Event, done: mp.Queue) -> None:  # type: ignore[type-arg]
    clients = []
    for _n, topic in enumerate(topics):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{topic}")
        c.max_inflight_messages_set(1000)
        c.max_queued_messages_set(0)
        c.connect("127.0.0.1", port)
        c.loop_start()
        clients.append((c, topic))
    bodies = [payload(i, fields) for i in range(64)]
    start.wait()
    infos = []
    for i in range(per_client):
        for c, topic in clients:
            infos.append(c.publish(f"tele/{topic}/SENSOR", bodies[i % 64], qos=1))
    for info in infos:
        info.wait_for_publish(timeout=120)
    unacked = sum(1 for info in infos if not info.is_published())
    done.put((len(infos), unacked, time.time()))
    for c, _ in clients:
        c.disconnect()
        c.loop_stop()


def publish_burst(port: int, messages: int, publishers: int, fields: int,
                  processes: int = 5) -> tuple[float, float, int]:
    """Publish `messages` from `publishers` clients spread over a few processes.

    Returns (start time, end time, PUBACKs missing)."""
    per_client = messages // publishers
    topics = [f"bench{i:03d}" for i in range(publishers)]
    start = mp.Event()
    done: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = []
    for p in range(processes):
        mine = topics[p::processes]
        proc = mp.Process(target=_publisher, args=(port, mine, per_client, fields, start, done))
        proc.start()
        procs.append(proc)
    time.sleep(2.0)  # let every client connect
    t0 = time.time()
    start.set()
    results = [done.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    return t0, max(r[2] for r in results), sum(r[1] for r in results)


def _bare_subscriber(port: int, expected: int, ready: mp.Event, out: mp.Queue) -> None:  # type: ignore[type-arg]
    state = {"n": 0, "first": 0.0, "last": 0.0}

    def on_message(client, userdata, msg):
        if state["n"] == 0:
            state["first"] = time.time()
        state["n"] += 1
        state["last"] = time.time()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-bare",
                    protocol=mqtt.MQTTv5)
    c.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    c.connect("127.0.0.1", port, clean_start=True, properties=props)
    c.subscribe("tele/+/SENSOR", qos=1)
    c.loop_start()
    time.sleep(1.0)
    ready.set()
    idle_since = time.time()
    seen = 0
    while state["n"] < expected and time.time() - idle_since < 15:
        time.sleep(0.05)
        if state["n"] != seen:
            seen, idle_since = state["n"], time.time()
    c.disconnect()
    c.loop_stop()
    out.put(dict(state))


def baseline(port: int, args: argparse.Namespace) -> dict:
    ready = mp.Event()
    out: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    sub = mp.Process(target=_bare_subscriber, args=(port, args.messages, ready, out))
    sub.start()
    ready.wait(30)
    t0, t_pub, unacked = publish_burst(port, args.messages, args.publishers, args.fields)
    state = out.get(timeout=900)
    sub.join()
    elapsed = max(state["last"] - t0, 1e-9)
    return {"received": state["n"], "seconds": elapsed, "rate": state["n"] / elapsed,
            "publish_seconds": t_pub - t0, "unacked": unacked}


def status(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as resp:
        return json.load(resp)


def vm_hwm_kib(pid: int) -> tuple[int, int]:
    text = Path(f"/proc/{pid}/status").read_text()
    values = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()
              if line.startswith(("VmHWM", "VmRSS"))}
    return values["VmHWM"], values["VmRSS"]


#: the kinds of monitor `--monitors N` cycles through, on the metrics the payloads carry;
#: levels no reading reaches, so what is measured is judging, not notifying
MONITOR_KINDS = (
    "{{name: m{i}, type: threshold, metric: plug.power, aggregation: avg, window: 5m, "
    "critical: 1000000}}",
    "{{name: m{i}, type: threshold, metric: plug.voltage, aggregation: max, window: 1m, "
    "critical: 100000, warning: 90000}}",
    "{{name: m{i}, type: state, metric: plug.current, above: 100000, duration: 60s}}",
    "{{name: m{i}, type: no_data, timeframe: 10m}}",
    "{{name: m{i}, type: threshold, metric: plug.energy_today, aggregation: last, "
    "window: 5m, comparison: below, critical: -1}}",
)


def monitors_yaml(n: int) -> str:
    """`n` monitors over every device, and someone to tell (never reached)."""
    if not n:
        return ""
    rows = "\n".join("  - " + MONITOR_KINDS[i % len(MONITOR_KINDS)].format(i=i)
                     for i in range(n))
    return ("people:\n  - {name: nobody, channels: ['json://127.0.0.1:9/bench']}\n"
            f"alerting: {{board: false}}\nmonitors:\n{rows}\n")


def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    broker = Mosquitto(work / "mosquitto", max_queued_messages=200_000, autosave_interval=60)
    broker.start()
    vm = VictoriaMetrics(work / "vm")
    http_port = free_port()
    print(f"# {args.messages} messages x {args.fields} fields from {args.publishers} "
          f"publishers; Mosquitto {broker.port}, work dir {work}", flush=True)
    try:
        base = baseline(broker.port, args)
        print(f"baseline  bare paho subscriber: {base['received']}/{args.messages} received "
              f"in {base['seconds']:.2f} s = {base['rate']:,.0f} msg/s "
              f"(publishers done in {base['publish_seconds']:.2f} s)", flush=True)

        config = work / "gateway.yaml"
        devices = "\n".join(f"  - {{id: bench{i:03d}, profile: tasmota, topic: bench{i:03d}}}"
                            for i in range(max(args.publishers, args.devices)))
        config.write_text(f"""
gateway: {{name: bench, data_dir: {work / 'data'}, http: {{port: {http_port}}}}}
mqtt: {{host: 127.0.0.1, port: {broker.port}, client_id: bench-gateway}}
store: {{durability: {args.durability}}}
devices:
{devices}
sinks:
  - {{name: vm, type: influx, url: "{vm.url}", backoff_max: 1}}
{monitors_yaml(args.monitors)}""")
        if args.monitors:
            print(f"# with {args.monitors} monitors over {max(args.publishers, args.devices)} "
                  "devices (every monitor watches every device)", flush=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        log_file = (work / "gateway.log").open("wb")
        gw = subprocess.Popen([sys.executable, "-m", "gateway", "--log-level", "WARNING",
                               "run", "--config", str(config)], env=env,
                              stdout=log_file, stderr=subprocess.STDOUT)
        try:
            for _ in range(100):
                try:
                    if status(http_port)["mqtt"]["connected"]:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            time.sleep(1.0)
            t0, _, unacked = publish_burst(broker.port, args.messages, args.publishers,
                                           args.fields)
            expected = args.messages * args.fields
            last_change, last, s = time.time(), None, {}
            while True:
                s = status(http_port)
                ing = s["ingest"]
                key = (ing["received"], ing["stored"])
                if key != last:
                    last, last_change = key, time.time()
                if ing["received"] >= args.messages or time.time() - last_change > 20:
                    break
                time.sleep(0.05)
            t_done = time.time()
            got = int(s["ingest"]["received"])
            stored = int(s["ingest"]["stored"])
            gw_rate = got / (t_done - t0)
            print(f"gateway   accepted {got}/{args.messages} messages ({stored} readings "
                  f"committed) in {t_done - t0:.2f} s = {gw_rate:,.0f} msg/s = "
                  f"{gw_rate * args.fields:,.0f} readings/s; ratio to baseline "
                  f"{gw_rate / base['rate']:.2f}", flush=True)
            print(f"lost      {args.messages - got} messages not received by the gateway; "
                  f"{unacked} publishes without PUBACK", flush=True)
            backlog = s["sinks"][0]["backlog_rows"]
            hwm, rss = vm_hwm_kib(gw.pid)
            print(f"memory    gateway peak RSS {hwm / 1024:.1f} MB during ingest "
                  f"(backlog of {backlog or stored} readings waiting)", flush=True)

            vm.start()
            t1 = time.time()
            start_backlog = None
            while True:
                s = status(http_port)
                sink = s["sinks"][0]
                if start_backlog is None:
                    start_backlog = stored
                if sink["backlog_rows"] == 0 and sink["delivered"] >= stored:
                    break
                if time.time() - t1 > 600:
                    print("drain     did not finish in 600 s", flush=True)
                    break
                time.sleep(0.05)
            t2 = time.time()
            delivered = int(s["sinks"][0]["delivered"])
            print(f"drain     {delivered} readings to VictoriaMetrics in {t2 - t1:.2f} s = "
                  f"{delivered / (t2 - t1):,.0f} readings/s", flush=True)
            hwm, rss = vm_hwm_kib(gw.pid)
            print(f"memory    gateway peak RSS {hwm / 1024:.1f} MB overall (now {rss / 1024:.1f}"
                  f" MB)", flush=True)
            vm.flush()
            in_vm = vm.sample_count('{__name__=~"plug_.*", gateway="bench"}')
            print(f"check     VictoriaMetrics holds {in_vm} of {expected} readings "
                  f"({expected - in_vm} missing)", flush=True)
        finally:
            gw.terminate()
            gw.wait(30)
    finally:
        vm.stop()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--publishers", type=int, default=50)
    parser.add_argument("--fields", type=int, default=10, choices=range(1, 11))
    parser.add_argument("--durability", default="full", choices=["full", "normal"])
    parser.add_argument("--monitors", type=int, default=0,
                        help="configure this many monitors (bench/alerting.py compares)")
    parser.add_argument("--devices", type=int, default=0,
                        help="configure this many devices (at least --publishers); the "
                             "rest are silent")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
