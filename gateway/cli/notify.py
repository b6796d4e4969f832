"""`gateway notify test MEMBER`: send a test message on each of a person's channels and
say which worked, before an alert depends on them.

Channels are named by their number and service only (`2 mailto`): their URLs hold
passwords and tokens.
"""

from __future__ import annotations

import argparse
import sys

from gateway.config.schema import Config

EXIT_OK, EXIT_PROBLEM = 0, 1


def test_person(config: Config, name: str) -> int:
    from gateway.notify.channel import send

    people = {p.name: p for p in config.people}
    person = people.get(name)
    if person is None:
        known = ", ".join(sorted(people)) or "none configured"
        print(f"no person {name!r} in people: ({known})", file=sys.stderr)
        return EXIT_PROBLEM
    title = f"Test from gateway {config.gateway.name}"
    body = (f"This is a test of {name}'s channels from the {config.gateway.name} gateway. "
            "Alerts will come this way.")
    failed = 0
    for index, url in enumerate(person.channels, start=1):
        result = send(str(url), title, body, timeout=20)
        if result.ok:
            print(f"  {index} {result.service}: delivered")
        else:
            failed += 1
            print(f"  {index} {result.service}: FAILED: {result.error}")
    total = len(person.channels)
    print(f"{name}: {total - failed} of {total} channel(s) delivered"
          + ("" if not failed else "; an alert tries them in order until one works"))
    return EXIT_OK if not failed else EXIT_PROBLEM


def add_commands(parser: argparse.ArgumentParser, common: argparse.ArgumentParser,
                 config: argparse.ArgumentParser) -> None:
    parser.description = "Try the people's notification channels."
    sub = parser.add_subparsers(dest="notify_command", required=True, metavar="COMMAND")
    p = sub.add_parser("test", parents=[common, config],
                       help="send a test message on each of a person's channels; exit 1 "
                            "when any fails")
    p.add_argument("person", help="a name from people:")
    p.set_defaults(func=_cmd_test)


def _cmd_test(args: argparse.Namespace) -> int:
    from gateway.cli.main import _config_or_exit

    config, _ = _config_or_exit(args.config)
    return test_person(config, args.person)
