"""`gateway status`: the running gateway's state, or what its store says when stopped.

Whether the gateway runs is asked of the kernel (who holds the store's lock),
not of whatever answers on the configured HTTP port: another gateway may hold
that port, or this one may run with the endpoint off. An answer on the port is
believed only when it names this gateway and this store. The exit status is
for monitoring scripts: 0 running and healthy, 1 running but degraded (with
the reasons shown), 3 not running, 4 cannot tell (the config cannot be read).
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gateway.cli.text import age, local_time, size
from gateway.clock import SYSTEM
from gateway.config.schema import Config
from gateway.notify.journal import FILE as ALERTS_FILE
from gateway.notify.journal import Journal
from gateway.store.bounds import measure
from gateway.store.inspect import StoreUnreadable, open_readonly
from gateway.store.lock import holder
from gateway.store.outbox import DB_NAME

EXIT_HEALTHY, EXIT_DEGRADED, EXIT_NOT_RUNNING, EXIT_UNKNOWN = 0, 1, 3, 4
#: sink states that mean readings are not getting through
SINK_TROUBLE = ("retrying", "held")


def gather(config: Config, config_dir: Path) -> tuple[dict[str, Any], int]:
    """The status to show and the exit code that goes with it."""
    from gateway.config.load import data_dir

    folder = data_dir(config, config_dir)
    pid = holder(folder)
    http = config.gateway.http
    url = f"http://{http.host}:{http.port}/status"
    status: dict[str, Any] | None = None
    note = ""
    if pid is not None and http.enabled:
        answer, note = _ask(url, config.gateway.name, folder, pid)
        status = answer
    elif pid is not None:
        note = "its status endpoint is off (gateway.http.enabled: false)"
    if status is None:
        status = stored_status(config, folder)
        if pid is not None:
            status["running"] = True
            status["pid"] = pid
            status["note"] = f"{note}; figures read from the store"
        else:
            status["note"] = "no gateway holds its store; figures read from the store"
    if pid is None:
        return status, EXIT_NOT_RUNNING
    problems = degraded(status)
    status["degraded"] = problems
    return status, EXIT_DEGRADED if problems else EXIT_HEALTHY


def _ask(url: str, name: str, folder: Path, pid: int) -> tuple[dict[str, Any] | None, str]:
    """The running gateway's own status, if the answer on `url` is from it."""
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            answer = json.load(resp)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return None, f"no answer on {url} ({reason})"
    if not isinstance(answer, dict):
        return None, f"the answer on {url} is not a gateway's status"
    theirs = (answer.get("gateway"), answer.get("store"), answer.get("pid"))
    if theirs != (name, str(folder), pid):
        return None, (f"the answer on {url} is from another gateway ({theirs[0]!r}, store "
                      f"{theirs[1]}, pid {theirs[2]}), not from this one (pid {pid}): "
                      "check gateway.http.port")
    return answer, ""


def degraded(status: dict[str, Any]) -> list[str]:
    """Why a running gateway is not doing its whole job, one reason a line ([] if it is)."""
    out = list(status.get("health") or [])  # the gateway's own: broker, store, ingest
    for sink in status.get("sinks") or []:
        if sink.get("state") in SINK_TROUBLE:
            out.append(f"sink {sink['name']} is {sink['state']}"
                       + (f": {sink['last_error']}" if sink.get("last_error") else ""))
    alerts = status.get("alerts") or {}
    failing = alerts.get("failing") or {}
    if failing.get("count"):
        out.append(f"alerts are not getting through: {failing['count']} notice(s) tried and "
                   f"not delivered, the oldest for {age(SYSTEM.now() - failing['since'])} "
                   "(gateway alerts list says why; they are retried)")
    problem = (alerts.get("bookings") or {}).get("problem")
    if problem:
        out.append(problem)
    if "mqtt" not in status:
        out.append("its own status could not be read: " + str(status.get("note", "")))
    return out



def _alerts(alerts: dict[str, Any]) -> list[str]:
    if alerts.get("error"):
        return [f"  alerts: {alerts['error']}"]
    open_ = alerts.get("open") or []
    lines = [f"  alerts: {len(open_)} open"
             + (f"; on duty: {', '.join(alerts['on_duty']) or 'nobody'}"
                if "on_duty" in alerts else "")
             + (f"; {alerts['pending_notifications']} notice(s) waiting to be sent"
                if alerts.get("pending_notifications") else "")]
    for a in open_:
        acked = f", acknowledged by {a['acked_by']}" if a.get("acked_by") else ""
        lines.append(f"    #{a['id']} {a['monitor']} on {a['group']}: {a['status']} since "
                     f"{local_time(a['since'])}{acked}")
    return lines


def stored_status(config: Config, data_dir: Path) -> dict[str, Any]:
    """Status read from the store file alone (the gateway is not running)."""
    status: dict[str, Any] = {"gateway": config.gateway.name, "running": False,
                              "store": str(data_dir)}
    if not (data_dir / DB_NAME).exists():
        status["sinks"] = []
        status["error"] = f"no store at {data_dir / DB_NAME} yet"
        return status
    try:
        outbox = open_readonly(data_dir)
    except StoreUnreadable as exc:
        status["sinks"] = []
        status["error"] = str(exc)
        return status
    try:
        now = SYSTEM.now()
        losses = outbox.losses()
        status["stored_rows"] = outbox.stored_rows()
        space = measure(outbox.conn, outbox.path, config.store.max_bytes,
                        config.store.min_free_bytes)
        status["store_space"] = {"bytes": space.used, "file_bytes": space.file + space.wal,
                                 "budget_bytes": space.budget, "fs_free_bytes": space.fs_free}
        status["losses_by_priority"] = {f"{s}/{r}/{p or '-'}": n for (r, s, p), n in
                                        outbox.losses_by_priority().items()}
        status["store_events"] = [{"at": at, "kind": kind, "detail": detail}
                                  for at, kind, detail in outbox.events(5)]
        status["sinks"] = [
            {"name": b.sink, "backlog_rows": b.rows,
             "oldest_age": b.age(now),
             "dropped": {r: n for (r, s), n in losses.items() if s == b.sink}}
            for b in outbox.backlogs()
        ]
        status["dead_letters"] = {f"{s}/{r}": n for (s, r), n in
                                  outbox.dead_letter_counts().items()}
    finally:
        outbox.close()
    if (data_dir / ALERTS_FILE).exists():
        try:
            journal = Journal(data_dir, readonly=True)
            try:
                status["alerts"] = {"open": [a.summary() for a in journal.alerts()],
                                    "pending_notifications": journal.pending()}
            finally:
                journal.close()
        except sqlite3.Error as exc:
            status["alerts"] = {"open": [], "error": f"cannot read {ALERTS_FILE}: {exc}"}
    return status


def _event_words(event: dict[str, Any]) -> str:
    try:
        return str(json.loads(event["detail"]).get("summary", event["detail"]))
    except (ValueError, AttributeError):
        return str(event["detail"])


def _devices(devices: dict[str, Any], now: float) -> list[str]:
    """Each device: online state, when last heard, and its latest values with units."""
    width = max(len(d) for d in devices)
    lines = ["  devices:"]
    for name, dev in devices.items():
        online = dev.get("online")
        state = "online" if online else ("OFFLINE" if online is False else "availability unknown")
        seen = dev.get("last_seen")
        heard = "nothing heard yet" if seen is None else f"heard {age(max(0.0, now - seen))} ago"
        if seen is not None and now - seen < 1:
            heard = "heard just now"
        kept = set(dev.get("retained") or ())
        if kept:
            heard += " (values marked * are the broker's retained last state, of unknown age)"
        lines.append(f"    {name:<{width}}  {state}, {heard}")
        values = " · ".join(f"{series}{'*' if series in kept else ''} {_value(v)}"
                            f"{(' ' + unit) if unit else ''}"
                            for series, (v, unit, *_) in (dev.get("values") or {}).items())
        if values:
            lines.extend(textwrap.wrap(values, 100, initial_indent=" " * (6 + width),
                                       subsequent_indent=" " * (6 + width),
                                       break_on_hyphens=False))
    return lines


def _recent_problems(recent: list[dict[str, Any]], shown: int = 5) -> list[str]:
    """The last messages not fully decoded, newest first: enough to find the device."""
    if not recent:
        return []
    lines = ["    last messages not fully decoded (newest first):"]
    for p in list(reversed(recent))[:shown]:
        when = time.strftime("%H:%M:%S", time.localtime(p.get("at") or 0))
        many = f" ({p['messages']} like it)" if p.get("messages", 1) > 1 else ""
        lines.append(f"      {when} {p.get('reason')} on {p.get('topic')}{many}: "
                     f"{p.get('detail')}")
        lines.append(f"        payload ({p.get('bytes')} bytes): {p.get('payload')}")
    return lines


def _value(v: float) -> str:
    return f"{v:.0f}" if v == int(v) and abs(v) < 1e15 else f"{v:.6g}"


def render_status(s: dict[str, Any]) -> str:
    head = "running" if s.get("running") else "not running"
    if s.get("running") and "degraded" in s:
        head += ", DEGRADED" if s["degraded"] else ", healthy"
    lines = [f"gateway {s.get('gateway')}: {head}"]
    for reason in s.get("degraded") or []:
        lines.append(f"  ! {reason}")
    for death in s.get("deaths") or []:
        when = local_time(death["at"])
        lines.append(f"  ! {death['component']} died at {when}: {death['error']} "
                     f"({death['action']}; the log has its traceback)")
    if s.get("note"):
        lines.append(f"  ({s['note']})")
    if s.get("error"):
        lines.append(f"  {s['error']}")
    if "uptime" in s:
        lines.append(f"  version {s.get('version')}, pid {s.get('pid')}, up {age(s['uptime'])}")
    elif s.get("pid"):
        lines.append(f"  pid {s['pid']}")
    lines.append(f"  store: {s.get('store')}")
    space = s.get("store_space")
    if space and space.get("budget_bytes"):
        used, budget = space["bytes"], space["budget_bytes"]
        lines.append(f"    {size(used)} of a {size(budget)} budget ({used / budget:.0%}), file "
                     f"{size(space['file_bytes'])}, {size(space['fs_free_bytes'])} free on "
                     "the disk")
        for key, n in sorted((space.get("compacted") or {}).items()):
            lines.append(f"    compacted ({key} priority): {n:.0f} rows folded into rollups")
        for key, n in sorted((space.get("evicted") or {}).items()):
            reason, _, priority = key.partition("/")
            lines.append(f"    evicted {reason} ({priority} priority): {n:.0f} readings")
    for event in s.get("store_events") or []:
        when = local_time(event["at"])
        lines.append(f"    {event['kind']} at {when}: {_event_words(event)}")
    mqtt = s.get("mqtt")
    if mqtt:
        state = "connected" if mqtt["connected"] else "NOT CONNECTED"
        if mqtt["connected"] and mqtt.get("subscribed") is False:
            state += ", SUBSCRIBING (messages for the devices may not reach it yet)"
        lines.append(f"  mqtt {mqtt['broker']}: {state}, {mqtt['topics']} topic filter(s)")
        if mqtt.get("sessions_lost"):
            lines.append(f"    SESSION LOST {mqtt['sessions_lost']:.0f} time(s): the broker had "
                         "forgotten the gateway's session, so messages published meanwhile "
                         "are gone (see the log)")
    if "trip" in s:
        lines.append(f"  trip under way: {s['trip']}" if s["trip"] else
                     "  no trip under way (ignition off)")
    for src in s.get("sources") or []:
        where = f" {src['port']}" if src.get("port") else ""
        state = "reading" if src.get("ready") else f"NOT READING: {src.get('problem') or '?'}"
        lines.append(f"  source {src['name']} ({src['type']}{where}): {state}")
        for reason, n in sorted((src.get("dropped") or {}).items()):
            lines.append(f"    lines dropped, {reason}: {n:.0f}")
    ing = s.get("ingest")
    if ing:
        # One outcome per message: the figures after "received" add up to it.
        undecodable = ing.get("undecodable") or {}
        lines.append(f"  ingest: received {ing['received']:.0f} messages, decoded "
                     f"{ing['decoded']:.0f}, partly decoded {ing.get('partly_decoded', 0):.0f}, "
                     f"ignored {ing['ignored']:.0f}, retained {ing.get('retained', 0):.0f}, "
                     f"undecodable {sum(undecodable.values()):.0f}; stored {ing['stored']:.0f} "
                     "readings"
                     + ("" if ing.get("store_writable", True) else
                        f"  STORE NOT WRITABLE ({ing.get('store_fault') or 'error'}): nothing "
                        "is acknowledged, the broker keeps the messages"))
        for reason, n in sorted(undecodable.items()):
            lines.append(f"    undecodable {reason}: {n:.0f}")
        if ing.get("retained"):
            lines.append("    retained: the broker's last known state, delivered on subscribing: "
                         "shown in the latest values, not stored as readings")
        for key, n in sorted((ing.get("device_time_rejected") or {}).items()):
            device, _, reason = key.partition("/")
            lines.append(f"    device clock not believed ({reason}), {device}: {n:.0f} "
                         "message(s) stamped on receipt")
        for reason, n in sorted((ing.get("field_problems") or {}).items()):
            lines.append(f"    values not read in partly decoded messages, {reason}: {n:.0f}")
        lines.extend(_recent_problems(ing.get("recent_problems") or []))
    devices = s.get("devices")
    if devices:
        lines.extend(_devices(devices, SYSTEM.now()))
    if s.get("alerts"):
        lines.extend(_alerts(s["alerts"]))
    lines.append("  sinks:")
    for k in s.get("sinks", []):
        head = f"    {k['name']}"
        if "state" in k:
            head += f" [{k['state']}]"
        oldest = age(k.get("oldest_age") or None)  # "-": nothing waits
        head += f" backlog {k.get('backlog_rows', '?')} rows, oldest {oldest}"
        if "delivered" in k:
            head += f", delivered {k['delivered']:.0f}"
        if k.get("merged"):
            head += f" ({k['merged']:.0f} combined into same-second points)"
        lines.append(head)
        if k.get("last_error") and k.get("state") == "waiting":
            lines.append(f"      {k['last_error']} (forward_when)")
        elif k.get("last_error"):
            lines.append(f"      last error: {k['last_error']}")
        for reason, n in sorted((k.get("dropped") or {}).items()):
            lines.append(f"      dropped {reason}: {n:.0f}")
    by_priority = s.get("losses_by_priority")
    for key, n in sorted((by_priority or s.get("losses_total") or {}).items()):
        lines.append(f"  given up since the store was made, {key}: {n}")
    for key, n in sorted((s.get("dead_letters") or {}).items()):
        sink = key.partition("/")[0]
        lines.append(f"  dead letters kept {key}: {n} (`gateway store redeliver --sink {sink}` "
                     "sends them again)")
    return "\n".join(lines)
