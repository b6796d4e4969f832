"""ELM327 poller benchmark: how many OBD requests a second the gateway's poller gets
from an adapter, against a bare pyserial loop on the same adapter in the same run.

The adapter is the simulator's ELM327 on a pseudo-terminal, the van's engine idling,
in a process of its own.
Each round runs, for --seconds each, alternately:
  bare     a pyserial loop: write `010C`, read to the prompt, as fast as it can, with
           pyserial's read_until (as most scripts do: a byte a system call) and with
           chunked reads (all that has arrived, a call); the faster is the baseline
  poller   the gateway's Elm327Source polling rpm as often as it can (every: 0),
           its readings handed to a counting submit (decoding and the store are
           measured by bench/ingest.py)
Target: poller >= 90 % of bare.

    .venv/bin/python bench/obd.py [--seconds 5] [--rounds 3] [--baud 38400]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import serial

from gateway.clock import SYSTEM
from gateway.config.validate import Duration
from gateway.health.stats import Stats
from gateway.sources.elm327 import Elm327Source
from gateway.sources.elm327_config import Elm327SourceConfig
from tests.programs.van import Van


def bare(port: str, seconds: float, chunked: bool = False) -> float:
    """Requests a second of a plain loop, headers on as the poller has them: reading with
    pyserial's read_until (a byte a call), or, `chunked`, all that has arrived a call."""
    link = serial.Serial(port, 38400, timeout=5)
    try:
        for command in (b"ATZ", b"ATE0", b"ATL0", b"ATS1", b"ATH1", b"ATSP0", b"0100"):
            link.write(command + b"\r")
            link.read_until(b">")
        done = 0
        end = time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < end:
            link.write(b"010C\r")
            if chunked:
                got = b""
                while not got.endswith(b">"):
                    got += link.read(link.in_waiting or 1)
            elif not link.read_until(b">").endswith(b">"):
                raise RuntimeError("the adapter did not answer")
            done += 1
        return done / (time.perf_counter() - start)
    finally:
        link.close()


def poller(port: str, seconds: float) -> tuple[float, int]:
    """Requests a second of the gateway's poller, and the readings it handed on."""
    config = Elm327SourceConfig(name="obd", port=port, pids={"rpm": Duration(0.0)},
                                trouble_codes_every=Duration(0.0),
                                battery_every=Duration(0.0))
    handed = 0
    lock = threading.Lock()

    def submit(message, ack) -> None:
        nonlocal handed
        with lock:
            handed += 1

    source = Elm327Source(config, SYSTEM, Stats(), submit)
    source.start()
    deadline = time.monotonic() + 20
    while source.ignition is not True and time.monotonic() < deadline:
        time.sleep(0.05)
    if source.ignition is not True:
        raise RuntimeError(f"the poller found no car: {source.problem()}")
    first, start = source.requests, time.perf_counter()
    time.sleep(seconds)
    done, elapsed = source.requests - first, time.perf_counter() - start
    source.stop()
    return done / elapsed, handed


def adapter(folder: str, baud: int | None, ready: mp.Event,  # type: ignore[type-arg]
            stop: mp.Event) -> None:  # type: ignore[type-arg]
    """The simulated van in a process of its own, as a real adapter is a device of its
    own: its work does not share the poller's interpreter."""
    van = Van(Path(folder), baud=baud)
    van.start()
    van.do("ignition-on")
    ready.set()
    stop.wait()
    van.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baud", type=int, default=0,
                        help="the line speed the simulated adapter keeps to (38400 for most "
                             "ELM327s); 0: answers at once, which shows the poller's own "
                             "cost per request at its largest")
    args = parser.parse_args()
    print("adapter   simulated ELM327, "
          + (f"{args.baud} baud line" if args.baud else "answering at once (no line speed)"))
    with TemporaryDirectory() as folder:
        ready, stop = mp.Event(), mp.Event()
        child = mp.Process(target=adapter, args=(folder, args.baud or None, ready, stop),
                           daemon=True)
        child.start()
        if not ready.wait(20):
            raise RuntimeError("the simulated van did not start")
        port = str(Path(folder) / "obd")
        try:
            bares, chunks, polls = [], [], []
            for n in range(args.rounds):
                b = bare(port, args.seconds)
                c = bare(port, args.seconds, chunked=True)
                p, handed = poller(port, args.seconds)
                bares.append(b)
                chunks.append(c)
                polls.append(p)
                print(f"round {n + 1}: bare read_until {b:,.0f} requests/s, bare chunked "
                      f"{c:,.0f}/s, poller {p:,.0f}/s ({handed:,} readings handed on), ratio "
                      f"to the faster bare loop {p / max(b, c):.2f}", flush=True)
        finally:
            stop.set()
            child.join(10)
    best = max(statistics.median(bares), statistics.median(chunks))
    ratio = statistics.median(polls) / best
    print(f"median    bare read_until {statistics.median(bares):,.0f}/s, bare chunked "
          f"{statistics.median(chunks):,.0f}/s, poller {statistics.median(polls):,.0f}/s: "
          f"ratio to the faster bare loop {ratio:.2f} "
          f"(target >= 0.90: {'met' if ratio >= 0.9 else 'NOT met'})")


if __name__ == "__main__":
    main()
