"""Serial ingest benchmark: what a reading costs the gateway when it comes as a line
of JSON on a serial port, against the same reading as an MQTT message, in one run.

Each phase starts a fresh gateway process (store only, no sink) and feeds it --rate
messages a second for --seconds, each the same JSON object of --fields numbers:
  serial   lines written to a pseudo-terminal the gateway's serial source reads
           (line-json profile)
  mqtt     QoS 1 messages through Mosquitto (generic-json profile)
For each: readings stored, lines or messages lost, and the gateway process's CPU
seconds (user + system, from /proc) per 1,000 readings. Target: serial no more per
reading than MQTT (ratio <= 1).

    .venv/bin/python bench/serial_ingest.py [--rate 10000] [--seconds 10] [--fields 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "firmware-sim"))

import paho.mqtt.client as mqtt

from firmware_sim.car.pty import PseudoTerminal
from tests.programs.mosquitto import Mosquitto
from tests.programs.ports import free_port

TICKS = os.sysconf("SC_CLK_TCK")


def body(i: int, fields: int) -> bytes:
    return json.dumps({f"v{n}": round(i * 0.01 + n, 2) for n in range(fields)}).encode()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def status(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
        return json.load(r)


def start_gateway(work: Path, broker: int, extra: str) -> tuple[subprocess.Popen, int]:
    http = free_port()
    config = work / "gateway.yaml"
    config.write_text(f"""
gateway: {{name: bench, data_dir: {work / 'data'}, http: {{port: {http}}},
          self_metrics_interval: 3600}}
mqtt: {{host: 127.0.0.1, port: {broker}, client_id: bench-{work.name}}}
{extra}""")
    log = (work / "gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "--log-level", "WARNING", "run",
                             "--config", str(config)], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            s = status(http)
            if s["mqtt"]["subscribed"] and all(src["ready"] for src in s["sources"]):
                return proc, http
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the gateway did not start: see {work / 'gateway.log'}")


def settle(http: int, expected: int) -> dict:
    """Wait until everything sent is stored, or nothing moved for 5 s."""
    last, moved = None, time.monotonic()
    while True:
        s = status(http)["ingest"]
        if s["stored"] >= expected:
            return s
        if s["stored"] != last:
            last, moved = s["stored"], time.monotonic()
        elif time.monotonic() - moved > 5:
            return s
        time.sleep(0.1)


def paced(rate: int, seconds: float, send) -> int:
    """Call send(i, n) to send n messages at a time, `rate` a second; the count sent."""
    sent, start = 0, time.perf_counter()
    total = int(rate * seconds)
    while sent < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        if due > sent:
            send(sent, due - sent)
            sent = due
        else:
            time.sleep(0.001)
    return sent


def serial_phase(work: Path, broker: int, args: argparse.Namespace) -> dict:
    link = work / "port"
    port = PseudoTerminal(str(link))
    proc, http = start_gateway(work, broker, f"""
sources: [{{name: node, type: serial, port: {link}}}]
devices: [{{id: node, profile: line-json, source: node, fields: {{"*": "node.{{key}}"}}}}]""")
    lines = [body(i, args.fields) + b"\n" for i in range(64)]
    lost = 0

    def send(i: int, n: int) -> None:
        nonlocal lost
        chunk = b"".join(lines[(i + k) % 64] for k in range(n))
        written = port.write(chunk, wait=1.0)
        lost += (len(chunk) - written) // len(lines[0])

    try:
        cpu0 = cpu_seconds(proc.pid)
        sent = paced(args.rate, args.seconds, send)
        got = settle(http, sent * args.fields)
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(30)
        port.close()
    return {"sent": sent, "stored": got["stored"], "lost": lost, "cpu": cpu}


def mqtt_phase(work: Path, broker: int, args: argparse.Namespace) -> dict:
    proc, http = start_gateway(work, broker, """
devices: [{id: node, profile: generic-json, topic: bench/node, fields: {"*": "node.{key}"}}]""")
    bodies = [body(i, args.fields) for i in range(64)]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-serial-pub")
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", broker)
    client.loop_start()
    while not client.is_connected():
        time.sleep(0.01)
    infos = []
    waited = 0

    def send(i: int, n: int) -> None:
        nonlocal waited
        for k in range(n):
            # Message ids are 16 bits: keep well under 65,536 unacknowledged.
            while len(infos) - waited > 30_000:
                infos[waited].wait_for_publish(60)
                waited += 1
            infos.append(client.publish("bench/node", bodies[(i + k) % 64], qos=1))

    try:
        cpu0 = cpu_seconds(proc.pid)
        sent = paced(args.rate, args.seconds, send)
        for info in infos:
            info.wait_for_publish(60)
        got = settle(http, sent * args.fields)
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        client.disconnect()
        client.loop_stop()
        proc.terminate()
        proc.wait(30)
    return {"sent": sent, "stored": got["stored"], "lost": 0, "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fields", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-serial-"))
    broker = Mosquitto(work / "mosquitto", max_queued_messages=500_000)
    broker.start()
    print(f"# {args.rate:,} messages/s for {args.seconds:g} s, {args.fields} fields each; "
          f"work dir {work}", flush=True)
    results = {}
    try:
        for name, phase in (("serial", serial_phase), ("mqtt", mqtt_phase)):
            folder = work / name
            folder.mkdir()
            r = phase(folder, broker.port, args)
            per = r["cpu"] / max(r["stored"], 1) * 1000
            results[name] = per
            print(f"{name:<8}  sent {r['sent']:,}, readings stored {int(r['stored']):,} of "
                  f"{r['sent'] * args.fields:,}, lost {r['lost']:,}; CPU {r['cpu']:.2f} s = "
                  f"{per * 1000:.1f} ms per 1,000 readings", flush=True)
    finally:
        broker.close()
    ratio = results["serial"] / results["mqtt"]
    print(f"ratio     serial / mqtt CPU per reading: {ratio:.2f} "
          f"(target <= 1: {'met' if ratio <= 1 else 'NOT met'})")


if __name__ == "__main__":
    main()
