"""`gateway alerts list | history | ack`: open alerts and who was told, what happened
since when, and "I'm on it".

They read and write alerts.db in the gateway's data_dir (found through
`--config FILE` or `--data-dir DIR`), so they work while the gateway runs; an
acknowledgement is seen by the running gateway at its next reminder, which it
then does not send.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sqlite3
import sys
from typing import Any

from gateway.cli.store import locate
from gateway.cli.text import age, local_time
from gateway.clock import SYSTEM
from gateway.config.validate import parse_duration
from gateway.notify.journal import FILE, Alert, Journal

EXIT_OK, EXIT_PROBLEM = 0, 1


def _journal(args: argparse.Namespace, write: bool = False) -> Journal | None:
    where = locate(args)
    if not (where.data_dir / FILE).is_file():
        print(f"no alerts recorded yet: {where.data_dir / FILE} does not exist (the gateway "
              "makes it when it runs with monitors configured)", file=sys.stderr)
        return None
    try:
        return Journal(where.data_dir, readonly=not write)
    except sqlite3.Error as exc:
        doing = "write" if write else "read"
        print(f"cannot {doing} {where.data_dir / FILE}: {exc} (run this as the user the "
              "gateway runs as)", file=sys.stderr)
        raise SystemExit(EXIT_PROBLEM) from None


def _told(journal: Journal, alert: Alert) -> list[dict[str, Any]]:
    return [{"person": n["person"] or "(nobody)", "transition": n["transition"],
             "state": n["state"], "at": n["sent_at"] or n["created"],
             "attempts": n["attempts"], "error": n["error"]}
            for n in journal.notifications(alert=alert.id)]


def _as_dict(journal: Journal, a: Alert) -> dict[str, Any]:
    return {"id": a.id, "monitor": a.monitor, "group": a.grp, "status": a.status,
            "opened": a.opened, "closed": a.closed, "value": a.value,
            "acked_by": a.acked_by, "acked_at": a.acked_at, "told": _told(journal, a)}


def _render(journal: Journal, alerts: list[Alert], now: float) -> str:
    lines = []
    for a in alerts:
        state = a.status if a.closed is None else f"closed ({a.status})"
        lines.append(f"#{a.id}  {a.monitor} on {a.grp}: {state}, opened {local_time(a.opened)} "
                     f"({age(now - a.opened)} ago)"
                     + (f", closed {local_time(a.closed)}" if a.closed else "")
                     + (f"; acknowledged by {a.acked_by} at {local_time(a.acked_at)}"
                        if a.acked_by and a.acked_at else ""))
        for t in _told(journal, a):
            what = {"sent": "told", "pending": "not yet told", "failed": "could not be told",
                    "nobody": "nobody told"}.get(t["state"], t["state"])
            error = f" ({t['error']})" if t["error"] and t["state"] != "sent" else ""
            lines.append(f"    {local_time(t['at'])}  {t['transition']:<16} {t['person']}: "
                         f"{what}{error}")
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    journal = _journal(args)
    if journal is None:
        return EXIT_OK if not args.json else _print_json([])
    alerts = journal.alerts(open_only=True)
    if args.json:
        return _print_json([_as_dict(journal, a) for a in alerts])
    print(_render(journal, alerts, SYSTEM.now()) if alerts else "no open alerts")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    span = parse_duration(args.since)
    if span is None:
        print(f"--since {args.since!r}: give a duration such as 1h, 7d", file=sys.stderr)
        return EXIT_PROBLEM
    journal = _journal(args)
    if journal is None:
        return EXIT_OK if not args.json else _print_json([])
    now = SYSTEM.now()
    alerts = journal.alerts(open_only=False, since=now - span)
    if args.json:
        return _print_json([_as_dict(journal, a) for a in alerts])
    print(_render(journal, alerts, now) if alerts else f"no alerts in the last {args.since}")
    return EXIT_OK


def cmd_ack(args: argparse.Namespace) -> int:
    journal = _journal(args, write=True)
    if journal is None:
        return EXIT_PROBLEM
    by = args.by or getpass.getuser()
    alert = journal.acknowledge(args.id, by, SYSTEM.now(), "cli")
    if alert is None:
        print(f"no open alert #{args.id} (gateway alerts list shows the open ones)",
              file=sys.stderr)
        return EXIT_PROBLEM
    print(f"#{alert.id} {alert.monitor} on {alert.grp}: acknowledged by {alert.acked_by}; "
          "no more reminders for it")
    return EXIT_OK


def _print_json(value: Any) -> int:
    print(json.dumps(value, indent=2))
    return EXIT_OK


def add_commands(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    parser.description = ("Open alerts and who was told, the history, and acknowledging an "
                          "alert (no more reminders). They work while the gateway runs.")
    where = argparse.ArgumentParser(add_help=False, parents=[common])
    group = where.add_mutually_exclusive_group()
    group.add_argument("--config", "-c", metavar="FILE",
                       help="the gateway's YAML config, for its data_dir")
    group.add_argument("--data-dir", metavar="DIR", help="the folder holding alerts.db")
    sub = parser.add_subparsers(dest="alerts_command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[where], help="open alerts and who was told")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("history", parents=[where],
                       help="alerts opened or closed lately, and every notice")
    p.add_argument("--since", default="7d", help="how far back (default 7d)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("ack", parents=[where], help="acknowledge an open alert: I'm on it")
    p.add_argument("id", type=int, help="the alert's number (#N in gateway alerts list)")
    p.add_argument("--by", help="who is on it (default: your user name)")
    p.set_defaults(func=cmd_ack)
