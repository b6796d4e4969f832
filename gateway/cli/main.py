"""The `gateway` command: run, check, decode, status, replay, demo, store.

Every command that reads a config takes `--config FILE`; without it, the file
named by $GATEWAY_CONFIG, else /etc/edge-gateway/gateway.yaml (where the
installer puts it). Results go to stdout, problems and progress to stderr; a
reader that goes away (`| head`) ends the command quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.cli import alerts as alertscli
from gateway.cli import notify as notifycli
from gateway.cli import store as storecli
from gateway.cli.logsetup import setup_logging
from gateway.clock import SYSTEM
from gateway.config.load import CONFIG_ENV, DEFAULT_CONFIG, config_path, load_config
from gateway.config.schema import Config, DeviceConfig
from gateway.config.validate import ConfigError, build

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
#: what a shell shows for a command ended by SIGPIPE (128 + 13)
EXIT_PIPE = 141
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
CONFIG_HELP = (f"the gateway's YAML config (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})")


def _config_or_exit(given: str | None) -> tuple[Config, Path]:
    """The config and its folder (relative paths in it start there); exit 1 if it is wrong."""
    path = config_path(given)
    try:
        return load_config(path), Path(path).resolve().parent
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_PROBLEM) from None


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.app.gateway import run_forever

    config, folder = _config_or_exit(args.config)
    return run_forever(config, folder, config_path(args.config))


def cmd_check(args: argparse.Namespace) -> int:
    from gateway.config.load import config_warnings
    from gateway.profiles.decoder import Decoder
    from gateway.profiles.library import ProfileLibrary

    path = config_path(args.config)
    config, folder = _config_or_exit(path)
    library = ProfileLibrary.for_config(config, folder)
    decoder = Decoder(config.devices, library, config.gateway.name, config.gateway.tags)
    warnings = config_warnings(config, path)
    for warning in warnings:
        print(f"{path}: warning: {warning}", file=sys.stderr)
    print(f"{path}: OK — gateway {config.gateway.name!r}, {len(config.devices)} "
          f"device(s), {len(config.sinks)} sink(s)"
          + (f", {len(warnings)} warning(s)" if warnings else ""))
    for device in config.devices:
        print(f"  device {device.id}: profile {device.profile}, priority {device.priority}")
    print("  subscribes (QoS 1): " + (", ".join(decoder.subscriptions()) or "nothing"))
    for sink in config.sinks:
        print(f"  sink {sink.name}: {sink.type}")
    for m in config.monitors:
        what = getattr(m, "metric", "") or "any reading"
        print(f"  monitor {m.name}: {m.type} on {what} of "
              f"{', '.join(m.devices) or 'every device'}; tells {', '.join(m.notify)}"
              + (" (safety-critical)" if m.safety_critical else ""))
    for p in config.people:
        print(f"  person {p.name}: {len(p.channels)} channel(s), available "
              f"{'; '.join(p.available)}")
    for d in config.downtimes:
        print(f"  downtime {d.name}: {'; '.join(d.windows) or d.rrule}"
              + (f" for {', '.join(d.monitors)}" if d.monitors else " for every routine monitor"))
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


def _decode_device(args: argparse.Namespace) -> tuple[Any, DeviceConfig, str, dict[str, str]]:
    """(library, device, gateway name, gateway tags) that `decode` should use."""
    from gateway.profiles.library import ProfileLibrary

    use_config = args.config is not None or (args.profile is None and args.device is not None)
    if not use_config:
        if args.profile is None:
            raise _Usage("give --profile P (with its --param k=v), or --device ID of a "
                         "configured device (with --config, or the default config)")
        return ProfileLibrary.builtin(), _profile_device(args), args.gateway, {}
    config, folder = _config_or_exit(args.config)
    library = ProfileLibrary.for_config(config, folder)
    gateway = args.gateway or config.gateway.name
    if args.device is not None and args.profile is None:
        found = [d for d in config.devices if d.id == args.device]
        if not found:
            known = ", ".join(d.id for d in config.devices) or "none"
            raise _Usage(f"no device {args.device!r} in {config_path(args.config)}; "
                         f"configured: {known}")
        if args.param:
            raise _Usage("--param is for --profile; a configured device has its own")
        return library, found[0], gateway, dict(config.gateway.tags)
    if args.profile is None:
        raise _Usage("give --device ID (a configured device) or --profile P")
    return library, _profile_device(args), gateway, dict(config.gateway.tags)


def _profile_device(args: argparse.Namespace) -> DeviceConfig:
    """The device `--profile P --param k=v ...` describes."""
    params = _parse_params(args.param or [])
    # A device's own keys (timezone, time) may be given as --param too, as in the config.
    own = {k: params.pop(k) for k in ("timezone", "time") if k in params}
    device, problems = build(DeviceConfig, {"id": args.device or "decode",
                                            "profile": args.profile, "params": params, **own},
                             "--param")
    if device is None or problems:
        raise _Usage("\n".join(str(p).replace("--param.", "--param ") for p in problems))
    return device


def _describe(decoder: Any, topic: str, path: str) -> bool:
    """Give `decoder` one describing message (`--describe TOPIC FILE`) before the one
    to decode, as a running gateway has them from the broker's retained messages."""
    try:
        body = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        print(f"gateway decode: --describe {topic} {path}: {exc.strerror}", file=sys.stderr)
        return False
    if not any(route.rule.learn for route, _ in decoder.routes(topic)):
        print(f"gateway decode: --describe {topic}: the device's profile learns nothing "
              "from that topic", file=sys.stderr)
        return False
    decoded = decoder.decode(topic, body, SYSTEM.now())
    for reason, detail in decoded.problems:
        print(f"--describe {topic}: {reason}: {detail}", file=sys.stderr)
    return not decoded.problems


class _Usage(Exception):
    """A decode request that cannot be met: the message says what to give instead."""


def cmd_decode(args: argparse.Namespace) -> int:

    from gateway.profiles.codes import coded_metrics, meanings
    from gateway.profiles.decoder import Decoder

    try:
        library, device, gateway, tags = _decode_device(args)
    except _Usage as exc:
        print(f"gateway decode: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    profile = library.get(device.profile)
    if profile is None:
        print(f"unknown profile {device.profile!r}; known: {', '.join(sorted(library.profiles))}",
              file=sys.stderr)
        return EXIT_PROBLEM
    problems = library.check_device(device, "--param")
    if problems:
        for p in problems:
            print(str(p).replace("--param.", "--param "), file=sys.stderr)
        return EXIT_PROBLEM
    # A payload typed on the command line comes back as the bytes the shell passed
    # (os.fsencode undoes Python's surrogateescape), so non-UTF-8 bytes reach the
    # decoder as they would from a device, instead of failing to encode here.
    if args.payload is None and any(path == "-" for _, path in args.describe or ()):
        print("gateway decode: only one of --payload and --describe can come from stdin; "
              "give --payload TEXT", file=sys.stderr)
        return EXIT_PROBLEM
    payload = os.fsencode(args.payload) if args.payload is not None else \
        sys.stdin.buffer.read()
    decoder = Decoder([device], library, gateway, tags)
    for topic, path in args.describe or ():
        if not _describe(decoder, topic, path):
            return EXIT_PROBLEM
    decoded = decoder.decode(args.topic, payload, SYSTEM.now())
    coded = coded_metrics(profile, device.params)
    unit_from = {id(r): where for r, where in decoded.unit_from or ()}
    for r in decoded.readings:
        line = r.as_dict()
        if r.unit:
            line["unit_from"] = unit_from.get(id(r), "profile")
        if r.metric in coded:
            map_name, vmap = coded[r.metric]
            line["means"] = meanings(vmap).get(r.value, "?")
            line["map"] = map_name
        print(json.dumps(line, ensure_ascii=False))
    if decoded.ignored:
        print(f"ignored: profile {device.profile} knows topic {args.topic!r} but reads nothing "
              "from it", file=sys.stderr)
    for reason, detail in decoded.problems:
        print(f"{reason}: {detail}", file=sys.stderr)
    if decoded.time_rejected is not None:
        reason, detail = decoded.time_rejected
        print(f"device time not believed ({reason}): {detail}; readings stamped on receipt",
              file=sys.stderr)
    return EXIT_PROBLEM if decoded.problems else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from gateway.cli.status import EXIT_UNKNOWN, gather, render_status

    try:
        config, folder = _config_or_exit(args.config)
    except SystemExit:
        return EXIT_UNKNOWN
    status, code = gather(config, folder)
    if args.json:
        print(json.dumps({**status, "exit_code": code}, indent=2, ensure_ascii=False))
    else:
        print(render_status(status))
    return code


def cmd_replay(args: argparse.Namespace) -> int:
    from gateway.cli.replay import replay
    from gateway.profiles.library import ProfileLibrary

    config, folder = _config_or_exit(args.config)
    if config.sinks and not args.force:
        # The gateway cannot tell a replayed message from the device's own: once
        # stored, made-up values would sit in the real series for good.
        names = ", ".join(f"{s.name} ({s.type})" for s in config.sinks)
        print(f"gateway replay: a gateway on this config sends to {names}: the example "
              "values would be stored and sent there as the devices' own readings, and "
              "nothing could tell them apart afterwards. Replay against a test config "
              "(its own data_dir, a file sink or none), or give --force.", file=sys.stderr)
        return EXIT_PROBLEM
    library = ProfileLibrary.for_config(config, folder)
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
    scenario = args.scenario or DEMO_SITES[args.site]
    opts = DemoOptions(broker=args.broker, protocol=args.protocol, scenario=scenario,
                       speed=args.speed, seed=args.seed,
                       data_dir=Path(args.data_dir or DEMO_DIRS[args.site]),
                       duration=args.duration, refresh=args.refresh, influx=args.influx)
    try:
        return run_demo(opts)
    except (ScenarioError, ConfigError, RuntimeError) as exc:
        print(f"gateway demo: {exc}", file=sys.stderr)
        return EXIT_PROBLEM


#: `gateway demo --site`: the scenario each site's demo plays
DEMO_SITES = {"hall": "demo-day", "van": "van-day"}
#: and where it keeps its files: a store of its own each (a sink new to a store is
#: given what the store still holds)
DEMO_DIRS = {"hall": "data/demo", "van": "data/demo-van"}


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand takes, before or after its name."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given after the subcommand it wins; otherwise the top level's stands.
    common.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS,
                        help="log detail (default INFO)")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=LOG_LEVELS,
                        help="log detail (default INFO)")
    common = common_options()
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", "-c", metavar="FILE", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str,
                with_config: bool = True) -> argparse.ArgumentParser:
        parents = [common, config] if with_config else [common]
        p = sub.add_parser(name, parents=parents, help=help, description=help)
        p.set_defaults(func=func)
        return p

    command("run", cmd_run, "run the gateway service until SIGTERM/SIGINT")
    command("check", cmd_check, "validate a config: every problem with its key path (exit 1), "
                                "warnings, and what it will read and send")

    p = command("decode", cmd_decode, "show the readings one message would give (exit 1 when "
                                      "it gives a problem)")
    p.add_argument("--device", metavar="ID",
                   help="a configured device to decode as (its profile, parameters and tags); "
                        "with --profile, only the id to tag readings with")
    p.add_argument("--profile", help="device profile name (instead of a configured --device)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="with --profile: a device parameter, e.g. topic=defib_socket "
                        "(repeatable)")
    p.add_argument("--topic", required=True, help="MQTT topic the message arrived on")
    p.add_argument("--payload", help="payload text (read from stdin when absent)")
    p.add_argument("--describe", nargs=2, action="append", metavar=("TOPIC", "FILE"),
                   help="a message in which the device describes itself, read first as the "
                        "gateway reads it retained: zigbee2mqtt/bridge/devices, a Home "
                        "Assistant discovery config (FILE - is stdin; repeatable)")
    p.add_argument("--gateway", default="", help="gateway name to tag readings with "
                                                 "(default: the config's)")

    p = command("replay", cmd_replay, "publish the configured devices' example payloads "
                                      "(try a config with no hardware)")
    p.add_argument("--every", type=float, default=10.0, help="seconds between rounds")
    p.add_argument("--rounds", type=int, default=1, help="rounds to publish; 0 = forever")
    p.add_argument("--force", action="store_true",
                   help="publish even though the config forwards to real destinations")

    p = command("demo", cmd_demo, "a simulated village hall (or van) through the gateway, with "
                                  "a live view (no hardware, no broker needed)", with_config=False)
    p.add_argument("--broker", type=_host_port,
                   help="HOST:PORT of a broker to use (default: start one in-process)")
    p.add_argument("--protocol", default="5", choices=["5", "3.1.1"],
                   help="MQTT version of the --broker (default 5)")
    p.add_argument("--site", choices=sorted(DEMO_SITES), default="hall",
                   help="hall: the village hall's day (default); van: a delivery van's "
                        "round over its OBD-II adapter and GPS, its office copy sent "
                        "only while it is parked")
    p.add_argument("--scenario", help="any gateway-sim scenario instead (gateway-sim list)")
    p.add_argument("--speed", type=float, default=60.0,
                   help="simulated seconds per real second (default 60: an hour a minute)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir",
                   help="folder for the demo's config, store, log and readings file "
                        "(default data/demo, data/demo-van for the van)")
    p.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    p.add_argument("--refresh", type=float, help="seconds between screens (1 on a terminal)")
    p.add_argument("--influx", metavar="URL",
                   help="also send to this VictoriaMetrics/InfluxDB (e.g. http://127.0.0.1:8428)")

    p = command("status", cmd_status,
                "is the gateway running, and how are its broker, store, sinks and devices; "
                "exit 0 running and healthy, 1 running but degraded, 3 not running, "
                "4 cannot tell (config unreadable)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("store", parents=[common],
                       help="what the store holds; check, export, redeliver or vacuum it")
    storecli.add_commands(p, common)

    p = sub.add_parser("notify", parents=[common], help="try a person's notification channels")
    notifycli.add_commands(p, common, config)

    p = sub.add_parser("alerts", parents=[common],
                       help="open alerts and who was told; history; acknowledge one")
    alertscli.add_commands(p, common)
    return parser


def _safe_streams() -> None:
    """Output that cannot fail on its own: a closed stdout, or text it cannot encode."""
    if sys.stdout is None:  # started with fd 1 closed
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            # A tag or payload excerpt may hold bytes that are not valid in the
            # terminal's encoding: show them escaped rather than fail.
            reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    _safe_streams()
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`gateway status | head -1`): nothing more to say to it.
        # Point stdout at /dev/null so the interpreter's own flush at exit cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    return code
