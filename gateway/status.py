"""`gateway status`: the running gateway's state, or what its store says when stopped."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from gateway.config.schema import Config
from gateway.store.bounds import measure
from gateway.store.inspect import StoreUnreadable, open_readonly
from gateway.store.outbox import DB_NAME


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
        now = time.time()
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
    return status


def _age(seconds: float | None) -> str:
    if not seconds:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def _event_words(event: dict[str, Any]) -> str:
    try:
        return str(json.loads(event["detail"]).get("summary", event["detail"]))
    except (ValueError, AttributeError):
        return str(event["detail"])


def render_status(s: dict[str, Any]) -> str:
    lines = [f"gateway {s.get('gateway')}: " + ("running" if s.get("running") else "not running")]
    if s.get("note"):
        lines.append(f"  ({s['note']})")
    if s.get("error"):
        lines.append(f"  {s['error']}")
    if "uptime" in s:
        lines.append(f"  version {s.get('version')}, pid {s.get('pid')}, up {_age(s['uptime'])}")
    lines.append(f"  store: {s.get('store')}")
    space = s.get("store_space")
    if space and space.get("budget_bytes"):
        used, budget = space["bytes"], space["budget_bytes"]
        lines.append(f"    {_mb(used)} of a {_mb(budget)} budget ({used / budget:.0%}), file "
                     f"{_mb(space['file_bytes'])}, {_mb(space['fs_free_bytes'])} free on "
                     "the disk")
        for key, n in sorted((space.get("compacted") or {}).items()):
            lines.append(f"    compacted ({key} priority): {n:.0f} rows folded into rollups")
        for key, n in sorted((space.get("evicted") or {}).items()):
            reason, _, priority = key.partition("/")
            lines.append(f"    evicted {reason} ({priority} priority): {n:.0f} readings")
    for event in s.get("store_events") or []:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["at"]))
        lines.append(f"    {event['kind']} at {when}: {_event_words(event)}")
    mqtt = s.get("mqtt")
    if mqtt:
        state = "connected" if mqtt["connected"] else "NOT CONNECTED"
        lines.append(f"  mqtt {mqtt['broker']}: {state}, {mqtt['topics']} topic filter(s)")
    ing = s.get("ingest")
    if ing:
        # One outcome per message: the figures after "received" add up to it.
        undecodable = ing.get("undecodable") or {}
        lines.append(f"  ingest: received {ing['received']:.0f} messages, decoded "
                     f"{ing['decoded']:.0f}, partly decoded {ing.get('partly_decoded', 0):.0f}, "
                     f"ignored {ing['ignored']:.0f}, undecodable "
                     f"{sum(undecodable.values()):.0f}; stored {ing['stored']:.0f} readings"
                     + ("" if ing.get("store_writable", True) else
                        f"  STORE NOT WRITABLE ({ing.get('store_fault') or 'error'}): nothing "
                        "is acknowledged, the broker keeps the messages"))
        for reason, n in sorted(undecodable.items()):
            lines.append(f"    undecodable {reason}: {n:.0f}")
        for reason, n in sorted((ing.get("field_problems") or {}).items()):
            lines.append(f"    values not read in partly decoded messages, {reason}: {n:.0f}")
    devices = s.get("devices")
    if devices:
        offline = sorted(d for d, v in devices.items() if v.get("online") is False)
        silent = sorted(d for d, v in devices.items() if v.get("last_seen") is None)
        line = f"  devices: {len(devices)}"
        if offline:
            line += f", offline: {', '.join(offline)}"
        if silent:
            line += f", nothing heard yet from: {', '.join(silent)}"
        lines.append(line)
    lines.append("  sinks:")
    for k in s.get("sinks", []):
        head = f"    {k['name']}"
        if "state" in k:
            head += f" [{k['state']}]"
        head += f" backlog {k.get('backlog_rows', '?')} rows, oldest {_age(k.get('oldest_age'))}"
        if "delivered" in k:
            head += f", delivered {k['delivered']:.0f}"
        if k.get("merged"):
            head += f" ({k['merged']:.0f} combined into same-second points)"
        lines.append(head)
        if k.get("last_error"):
            lines.append(f"      last error: {k['last_error']}")
        for reason, n in sorted((k.get("dropped") or {}).items()):
            lines.append(f"      dropped {reason}: {n:.0f}")
    by_priority = s.get("losses_by_priority")
    for key, n in sorted((by_priority or s.get("losses_total") or {}).items()):
        lines.append(f"  given up since the store was made, {key}: {n}")
    for key, n in sorted((s.get("dead_letters") or {}).items()):
        lines.append(f"  dead letters kept {key}: {n} (table dead_letters in the store)")
    return "\n".join(lines)
