"""`gateway-sim`: run simulated devices against a broker, record them, or load-test.

    gateway-sim list
    gateway-sim run --scenario ordinary-week --broker 127.0.0.1:1883 [--speed 60] [--seed 1]
    gateway-sim run --scenario ordinary-week --record week.jsonl   (no broker: fast as it can)
    gateway-sim config --scenario ordinary-week        (the gateway devices that read the site)
    gateway-sim load --devices 50 --rate 2 --duration 60 --broker 127.0.0.1:1883
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import yaml

from firmware_sim.devices.base import ScenarioError
from firmware_sim.network import BrokerNetwork, Network, Recording
from firmware_sim.runner import ScenarioRun
from firmware_sim.scenario import format_duration, load_scenario, parse_duration, scenario_names
from firmware_sim.site import gateway_config, gateway_devices, gateway_sources, load_site


def _broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


def _duration(text: str) -> float:
    try:
        return parse_duration(text, "duration")
    except ScenarioError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _hook(spec: str) -> tuple[str, Callable[[], None]]:
    name, sep, command = spec.partition("=")
    if not sep or not command:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected EVENT=COMMAND, e.g. "
                                         "broker-down='systemctl stop mosquitto'")

    def run() -> None:
        done = subprocess.run(command, shell=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.quote(command)} exited with {done.returncode}")

    return name, run


def _version() -> str:
    """The installed distribution's version (the simulator ships with the gateway)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edge-gateway")
    except PackageNotFoundError:
        return "(not installed)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gateway-sim", description=(
        "Simulated device firmware (Tasmota, Shelly, Zigbee2MQTT, ESPHome, ELM327, GPS) "
        "that publishes exactly what the real devices publish."))
    p.add_argument("--version", action="version", version=f"gateway-sim {_version()}")
    p.add_argument("--log-level", default="WARNING", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the scenarios")
    run = sub.add_parser("run", help="run a scenario against a broker, or record it")
    run.add_argument("--scenario", required=True, help="a name from `list`, or a YAML file")
    run.add_argument("--broker", type=_broker, help="HOST:PORT of the MQTT broker")
    run.add_argument("--username", default=os.environ.get("SIM_MQTT_USERNAME"))
    run.add_argument("--speed", type=float, default=None,
                     help="simulated seconds per real second (default 60 with a broker; a "
                          "recording alone runs as fast as it can)")
    run.add_argument("--seed", type=int, default=0, help="same seed and start: same messages")
    run.add_argument("--start", help="simulated start, local ISO time (default: the scenario's, "
                                     "else now)")
    run.add_argument("--duration", type=_duration, help="run this long instead (e.g. 2h)")
    run.add_argument("--record", help="also write every message as JSON lines to this file")
    run.add_argument("--on", type=_hook, action="append", default=[], metavar="EVENT=COMMAND",
                     help="run COMMAND on broker-down, broker-up, uplink-down or uplink-up")
    cfg = sub.add_parser("config", help="print the gateway devices that read a site")
    cfg.add_argument("--scenario", help="a scenario (its site, with its device changes)")
    cfg.add_argument("--site", help="a site name or file")
    load = sub.add_parser("load", help="N devices at R messages a second each")
    load.add_argument("--devices", type=int, default=50)
    load.add_argument("--rate", type=float, default=1.0, help="messages per second per device")
    load.add_argument("--duration", type=_duration, default=60.0)
    load.add_argument("--broker", type=_broker, default=("127.0.0.1", 1883))
    load.add_argument("--connections", type=int, default=8)
    load.add_argument("--print-config", action="store_true",
                      help="only print the gateway devices for these plugs")
    return p


def _clock(run: ScenarioRun, ts: float) -> str:
    return run.sim.local(ts).strftime("%a %d %b %H:%M:%S")


def cmd_list(out: IO[str]) -> int:
    for name in scenario_names():
        sc = load_scenario(name)
        hours = sc.duration / 3600
        span = f"{hours / 24:g} d" if hours >= 24 else f"{hours:g} h"
        out.write(f"{name:<20} {span:>6}  site {sc.site.name}\n")
        out.write(f"    {sc.description}\n")
    return 0


def cmd_config(args: argparse.Namespace, out: IO[str]) -> int:
    overrides: Any = None
    if args.scenario:
        sc = load_scenario(args.scenario)
        site, overrides = sc.site, sc.devices
    elif args.site:
        site = load_site(args.site)
    else:
        raise ScenarioError("give --scenario NAME or --site NAME")
    devices = gateway_devices(site, overrides)
    sources = gateway_sources(site, overrides)
    yaml.safe_dump(gateway_config(site, devices, sources), out, sort_keys=False)
    return 0


def cmd_run(args: argparse.Namespace, out: IO[str]) -> int:
    if args.broker is None and args.record is None:
        raise ScenarioError("give --broker HOST:PORT to publish, or --record FILE to record")
    scenario = load_scenario(args.scenario)
    broker: BrokerNetwork | None = None
    if args.broker is not None:
        host, port = args.broker
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as exc:
            raise ScenarioError(f"no MQTT broker answers on {host}:{port} ({exc.strerror or exc})"
                                ) from None
        broker = BrokerNetwork(host, port, username=args.username,
                               password=os.environ.get("SIM_MQTT_PASSWORD"))
    speed = args.speed if args.speed is not None else (60.0 if broker else 0.0)

    def report(ts: float, text: str) -> None:
        out.write(f"[{_clock(run, ts)}] {text}\n")
        out.flush()

    run = ScenarioRun(scenario, None, args.seed, args.start, speed, dict(args.on), report,
                      args.duration)
    # Opened only now, so a scenario with a mistake leaves no file behind.
    record_file = open(args.record, "w", encoding="utf-8") if args.record else None  # noqa: SIM115
    # The recording stamps messages with this run's simulated time.
    recording = Recording(run.sim, out=record_file) if record_file is not None else None
    network: Network | None = broker
    if broker is not None and recording is not None:
        network = _Tee(broker, recording)
    elif recording is not None:
        network = recording
    run.network = network
    signal.signal(signal.SIGINT, lambda *_: run.stop())
    signal.signal(signal.SIGTERM, lambda *_: run.stop())
    where = f"broker {args.broker[0]}:{args.broker[1]}" if broker else f"recording {args.record}"
    pace = f"x{speed:g}" if speed else "as fast as possible"
    out.write(f"scenario {scenario.name} (site {scenario.site.name}, seed {args.seed}) from "
              f"{_clock(run, run.sim.start)} for {format_duration(run.end - run.sim.start)}, "
              f"{pace}, to {where}\n")

    def started() -> None:
        for d in run.built.devices:
            if d.endpoint():
                out.write(f"  {d.id}: {d.endpoint()}\n")

    def progress() -> None:
        sent = f"{broker.sent} messages, " if broker else ""
        out.write(f"[{_clock(run, run.sim.now)}] {sent}{run.built.world.describe()}\n")
        out.flush()

    began = time.monotonic()
    try:
        run.run(started, progress)
    finally:
        if broker is not None:
            broker.wait_acked(10)
            broker.close()
        if record_file is not None:
            record_file.close()
    sent = broker.sent if broker else len(recording.messages if recording else [])
    out.write(f"done at {_clock(run, run.sim.now)}: {sent} messages in "
              f"{time.monotonic() - began:.1f} s"
              + (f", {broker.acked} acknowledged by the broker" if broker else "") + "\n")
    return 0


class _Tee:
    """Publish to the broker and record at once."""

    def __init__(self, broker: BrokerNetwork, recording: Recording) -> None:
        self.broker = broker
        self.recording = recording

    def connect(self, client_id: str, will: Any = None, on_reconnect: Any = None) -> Any:
        return _TeeLink(self.broker.connect(client_id, will, on_reconnect),
                        self.recording.connect(client_id, will, on_reconnect))

    def close(self) -> None:
        self.broker.close()
        self.recording.close()


class _TeeLink:
    def __init__(self, *links: Any) -> None:
        self.links = links

    def publish(self, msg: Any) -> None:
        for link in self.links:
            link.publish(msg)

    def drop(self) -> None:
        for link in self.links:
            link.drop()

    def close(self) -> None:
        for link in self.links:
            link.close()


def cmd_load(args: argparse.Namespace, out: IO[str]) -> int:
    from firmware_sim.load import gateway_devices, run_load

    if args.print_config:
        yaml.safe_dump({"devices": gateway_devices(args.devices)}, out, sort_keys=False)
        return 0
    host, port = args.broker
    out.write(f"load: {args.devices} Tasmota plugs x {args.rate:g} msg/s for "
              f"{args.duration:g} s to {host}:{port}\n")

    def progress(sent: int, seconds: float) -> None:
        out.write(f"  {seconds:5.0f} s: {sent} sent ({sent / max(seconds, 1e-9):.0f} msg/s)\n")
        out.flush()

    result = run_load(host, port, args.devices, args.rate, args.duration, args.connections,
                      progress=progress)
    out.write(f"sent {result.sent} messages in {result.seconds:.1f} s ({result.rate:.0f} msg/s; "
              f"target {args.devices * args.rate:g}); acknowledged {result.acked}; "
              f"lost {result.lost}\n")
    return 0 if result.lost == 0 and result.acked >= result.sent else 1


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if out is None and sys.stdout is None:  # started with fd 1 closed
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    out = out or sys.stdout
    try:
        commands = {"list": lambda: cmd_list(out), "config": lambda: cmd_config(args, out),
                    "run": lambda: cmd_run(args, out)}
        code = commands.get(args.command, lambda: cmd_load(args, out))()
        out.flush()
        return code
    except ScenarioError as exc:
        print(f"gateway-sim: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`gateway-sim list | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ConnectionError, OSError) as exc:
        print(f"gateway-sim: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
