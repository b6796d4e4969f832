"""The `gateway` command: run, check, decode, status, replay, demo, store."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gateway import __version__, storecli
from gateway.config.load import load_config
from gateway.config.schema import DeviceConfig
from gateway.config.validate import ConfigError, build

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def _config_or_exit(path: str) -> Any:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_PROBLEM) from None


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.service import run_forever

    config = _config_or_exit(args.config)
    return run_forever(config, Path(args.config).resolve().parent)


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_PROBLEM
    from gateway.profiles.decoder import Decoder
    from gateway.profiles.library import ProfileLibrary

    library = ProfileLibrary.for_config(config, Path(args.config).resolve().parent)
    decoder = Decoder(config.devices, library, config.gateway.name, config.gateway.tags)
    print(f"{args.config}: OK — gateway {config.gateway.name!r}, {len(config.devices)} "
          f"device(s), {len(config.sinks)} sink(s)")
    for device in config.devices:
        print(f"  device {device.id}: profile {device.profile}, priority {device.priority}")
    print("  subscribes (QoS 1): " + ", ".join(decoder.subscriptions()))
    for sink in config.sinks:
        print(f"  sink {sink.name}: {sink.type}")
    return EXIT_OK


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--param wants key=value, got {pair!r}")
        try:
            params[key] = json.loads(value) if value[:1] in "{[" else value
        except ValueError:
            params[key] = value
    return params


def cmd_decode(args: argparse.Namespace) -> int:
    from gateway.profiles.decoder import Decoder
    from gateway.profiles.library import ProfileLibrary

    library = ProfileLibrary.builtin() if not args.config else ProfileLibrary.for_config(
        _config_or_exit(args.config), Path(args.config).resolve().parent)
    if args.profile not in library.profiles:
        print(f"unknown profile {args.profile!r}; known: {', '.join(sorted(library.profiles))}",
              file=sys.stderr)
        return EXIT_PROBLEM
    params = _parse_params(args.param or [])
    # A device's own keys (timezone, time) may be given as --param too, as in the config.
    own = {k: params.pop(k) for k in ("timezone", "time") if k in params}
    device, problems = build(DeviceConfig, {"id": args.device, "profile": args.profile,
                                            "params": params, **own}, "--param")
    if device is None or problems:
        for p in problems:
            print(str(p).replace("--param.", "--param "), file=sys.stderr)
        return EXIT_PROBLEM
    problems = library.check_device(device, "--param")
    if problems:
        for p in problems:
            print(str(p).replace("--param.", "--param "), file=sys.stderr)
        return EXIT_PROBLEM
    payload = args.payload.encode("utf-8") if args.payload is not None else \
        sys.stdin.buffer.read()
    import time

    decoded = Decoder([device], library, args.gateway).decode(args.topic, payload, time.time())
    for r in decoded.readings:
        print(json.dumps(r.as_dict(), ensure_ascii=False))
    if decoded.ignored:
        print(f"ignored: profile {args.profile} knows topic {args.topic!r} but reads nothing "
              "from it", file=sys.stderr)
    for reason, detail in decoded.problems:
        print(f"{reason}: {detail}", file=sys.stderr)
    if decoded.time_rejected is not None:
        reason, detail = decoded.time_rejected
        print(f"device time not believed ({reason}): {detail}; readings stamped on receipt",
              file=sys.stderr)
    return EXIT_PROBLEM if decoded.problems else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from gateway.status import render_status, stored_status

    config = _config_or_exit(args.config)
    http = config.gateway.http
    url = f"http://{http.host}:{http.port}/status"
    status = None
    if http.enabled:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                status = json.load(resp)
        except (OSError, urllib.error.URLError, ValueError):
            status = None
    if status is None:
        from gateway.service import data_dir

        folder = data_dir(config, Path(args.config).resolve().parent)
        status = stored_status(config, folder)
        status["note"] = f"no answer on {url}; figures read from the store"
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(render_status(status))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from gateway.profiles.library import ProfileLibrary
    from gateway.replay import replay

    config = _config_or_exit(args.config)
    library = ProfileLibrary.for_config(config, Path(args.config).resolve().parent)
    try:
        sent = replay(config, library, args.every, args.rounds)
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        print(f"cannot publish to {config.mqtt.host}:{config.mqtt.port}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    print(f"published {sent} example message(s)")
    return EXIT_OK


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo.run import DemoOptions, run_demo

    try:
        from firmware_sim.devices.base import ScenarioError
    except ImportError:
        print("gateway demo needs the simulator (firmware_sim), installed with the gateway "
              "from its source tree", file=sys.stderr)
        return EXIT_PROBLEM
    opts = DemoOptions(broker=args.broker, protocol=args.protocol, scenario=args.scenario,
                       speed=args.speed, seed=args.seed, data_dir=Path(args.data_dir),
                       duration=args.duration, refresh=args.refresh, influx=args.influx)
    try:
        return run_demo(opts)
    except (ScenarioError, ConfigError, RuntimeError) as exc:
        print(f"gateway demo: {exc}", file=sys.stderr)
        return EXIT_PROBLEM


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the gateway service")
    p.add_argument("--config", "-c", required=True, help="YAML config file")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="validate a config file; print every problem")
    p.add_argument("--config", "-c", required=True)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("decode", help="show the readings one message would give")
    p.add_argument("--profile", required=True, help="device profile name")
    p.add_argument("--topic", required=True, help="MQTT topic the message arrived on")
    p.add_argument("--payload", help="payload text (read from stdin when absent)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="device parameter, e.g. topic=defib_socket (repeatable)")
    p.add_argument("--device", default="decode", help="device id to tag readings with")
    p.add_argument("--gateway", default="", help="gateway name to tag readings with")
    p.add_argument("--config", "-c", help="use this config's extra profile folders")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("replay", help="publish the configured devices' example payloads "
                                      "(try a config with no hardware)")
    p.add_argument("--config", "-c", required=True)
    p.add_argument("--every", type=float, default=10.0, help="seconds between rounds")
    p.add_argument("--rounds", type=int, default=1, help="rounds to publish; 0 = forever")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("demo", help="a simulated village hall through the gateway, with a "
                                    "live view (no hardware, no broker needed)")
    p.add_argument("--broker", type=_host_port,
                   help="HOST:PORT of a broker to use (default: start one in-process)")
    p.add_argument("--protocol", default="5", choices=["5", "3.1.1"],
                   help="MQTT version of the --broker (default 5)")
    p.add_argument("--scenario", default="demo-day",
                   help="a gateway-sim scenario (gateway-sim list)")
    p.add_argument("--speed", type=float, default=60.0,
                   help="simulated seconds per real second (default 60: an hour a minute)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default="data/demo",
                   help="folder for the demo's config, store, log and readings file")
    p.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    p.add_argument("--refresh", type=float, help="seconds between screens (1 on a terminal)")
    p.add_argument("--influx", metavar="URL",
                   help="also send to this VictoriaMetrics/InfluxDB (e.g. http://127.0.0.1:8428)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("status", help="ingest, backlog and sink state")
    p.add_argument("--config", "-c", required=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("store", help="what the store holds; check, export or vacuum it")
    storecli.add_commands(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return int(args.func(args) or 0)
