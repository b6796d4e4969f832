"""From a monitor's change of status to notifications queued for the right people.

The message is the monitor's template, rendered once per notice with
Datadog's section flags for the transition (`is_alert`, `is_recovery`,
`is_alert_recovery`, `is_renotify` ...) and the variables of the group
(`value`, `threshold`, `device.name`, `tags.room`, `last_triggered_at` in the
gateway's time zone ...). Who is told comes from the rota at that moment;
when nobody is, that is recorded too (state `nobody`), never silently dropped.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.clock import Clock
from gateway.config.validate import duration_words
from gateway.monitors.config import MonitorCommon, ThresholdMonitor
from gateway.monitors.template import Template
from gateway.notify.downtime import Downtimes
from gateway.notify.journal import MUTED, NOBODY, Journal, Outgoing
from gateway.notify.rota import Rota

ALERT, WARN, NO_DATA, OK = "ALERT", "WARN", "NO DATA", "OK"
_FLAG = {ALERT: "is_alert", WARN: "is_warning", NO_DATA: "is_no_data"}
_RECOVERY = {ALERT: "is_alert_recovery", WARN: "is_warning_recovery",
             NO_DATA: "is_no_data_recovery"}


@dataclass(frozen=True)
class Change:
    """One group of one monitor moving from one status to another (or reminded)."""

    monitor: MonitorCommon
    group: str
    before: str
    after: str
    value: float | None
    tags: tuple[tuple[str, str], ...]
    at: float
    #: when the current trouble began (for last_triggered_at)
    triggered_at: float
    #: a notice with no change of status: "renotify" (a reminder), "escalation" (a step
    #: of `escalate:`, told to `notify`), "downtime-end" (still in trouble as a downtime
    #: that silenced it ends)
    notice: str = ""
    notify: tuple[str, ...] | None = None
    #: the escalation step this is (1 = the first)
    step: int = 0
    #: an anomaly monitor's band (lower, upper) at the change
    band: tuple[float, float] | None = None

    @property
    def renotify(self) -> bool:
        return self.notice == "renotify"


def flags(change: Change) -> frozenset[str]:
    out = set()
    if change.after == OK:
        out.add("is_recovery")
        if change.before in _RECOVERY:
            out.add(_RECOVERY[change.before])
    elif change.after in _FLAG:
        out.add(_FLAG[change.after])
    if change.notice == "renotify":
        out.add("is_renotify")
    elif change.notice == "escalation":
        out.add("is_escalation")
    return frozenset(out)


def _ip() -> str:
    """The address this host reaches the network from (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


class Dispatcher:
    def __init__(self, journal: Journal, rota: Rota, clock: Clock, gateway_name: str,
                 device_tags: Mapping[str, Mapping[str, str]],
                 downtimes: Downtimes | None = None) -> None:
        self.journal = journal
        self.rota = rota
        self.downtimes = downtimes or Downtimes((), clock)
        #: called after each change is recorded (the alerts board republishes)
        self.after_record: Callable[[], None] = lambda: None
        self.clock = clock
        self.gateway_name = gateway_name
        self.device_tags = device_tags
        self.ip = _ip()
        self._templates: dict[str, Template] = {}

    def _template(self, monitor: MonitorCommon) -> Template:
        t = self._templates.get(monitor.message)
        if t is None:
            t = self._templates[monitor.message] = Template.parse(monitor.message)
        return t

    def tags(self, change: Change) -> dict[str, str]:
        """The group's tags over its device's configured ones (room, gateway ...)."""
        tags = dict(change.tags)
        return {**self.device_tags.get(tags.get("device", ""), {}), **tags}

    def values(self, change: Change, told: list[str]) -> dict[str, str]:
        m = change.monitor
        all_tags = self.tags(change)
        device = all_tags.get("device", "") if "device" in dict(change.tags) else ""
        out = {
            "value": _number(change.value), "status": change.after,
            "priority": f"P{m.priority}", "monitor.name": m.name, "group": change.group,
            "device.name": device, "gateway.name": self.gateway_name, "gateway.ip": self.ip,
            "duration": duration_words(max(0.0, change.at - change.triggered_at)),
            "last_triggered_at": self.clock.local(change.triggered_at).strftime(
                "%Y-%m-%d %H:%M:%S %Z"),
            "told": ", ".join(told),
        }
        if isinstance(m, ThresholdMonitor):
            out["threshold"] = _number(m.critical)
            out["warn_threshold"] = _number(m.warning)
        if change.band is not None:
            out["anomaly.lower"], out["anomaly.upper"] = (_number(round(x, 2))
                                                          for x in change.band)
        out.update({f"tags.{k}": v for k, v in all_tags.items()})
        return out

    def title(self, change: Change) -> str:
        word = "Recovered" if change.after == OK else change.after
        extra = {"renotify": " (reminder)", "escalation": f" (escalation {change.step})",
                 "downtime-end": " (after a downtime)"}.get(change.notice, "")
        return f"[{word}] {change.monitor.name} on {change.group}{extra}"

    def outgoing(self, change: Change) -> tuple[list[Outgoing], str | None]:
        """The notices of a change, and the downtime that silenced them (if one did)."""
        m = change.monitor
        notify = change.notify if change.notify is not None else m.notify
        names, why = self.rota.recipients(notify, m.safety_critical, change.at)
        if not names:
            return [Outgoing("", self.title(change), "", NOBODY, f"nobody to tell ({why})")], \
                None
        body = self._template(m).render(flags(change), self.values(change, names))
        quiet = None if m.safety_critical or change.notice == "downtime-end" else \
            self.downtimes.silencing(m.name, self.tags(change).items(), change.at)
        if quiet is not None:
            reason = f"silenced by downtime {quiet.config.name}"
            return [Outgoing(n, self.title(change), body, MUTED, reason) for n in names], \
                quiet.config.name
        return [Outgoing(n, self.title(change), body) for n in names], None

    def record(self, change: Change) -> str | None:
        """Queue the notices of one change with the change itself (one transaction).
        Returns the downtime that silenced them, if one did."""
        try:
            return self._record(change)
        finally:
            self.after_record()

    def _record(self, change: Change) -> str | None:
        out, muted_by = self.outgoing(change)
        if change.notice:
            transition = {"renotify": "reminder", "escalation": f"escalation {change.step}",
                          "downtime-end": "downtime ended"}[change.notice]
            self.journal.record_notice(change.monitor.name, change.group, change.at,
                                       change.value, out, f"{change.after} {transition}",
                                       muted_by, change.step or None)
            return muted_by
        self.journal.record_transition(
            change.monitor.name, change.group, change.after, change.at, change.value,
            change.tags, out, f"{change.before} -> {change.after}",
            opens=change.after != OK, closes=change.after == OK, muted_by=muted_by)
        return muted_by
