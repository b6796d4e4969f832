"""The monitors' settings (`monitors:`): one class per `type`, beside the monitors.

This module is part of the config layer (tests/test_import_layers.py): the
root config composes it, and it imports nothing of the monitors' machinery.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from gateway.config.schema import name_problems, positive
from gateway.config.validate import Duration, doc
from gateway.config.weekly import window_problems
from gateway.monitors.template import Template, TemplateError

Aggregation = Literal["avg", "min", "max", "sum", "last", "count"]
Direction = Literal["above", "below"]

#: shown when a monitor gives no message of its own
DEFAULT_MESSAGE = (
    "{{#is_alert}}ALERT{{/is_alert}}{{#is_warning}}WARNING{{/is_warning}}"
    "{{#is_no_data}}NO DATA{{/is_no_data}}{{#is_recovery}}Recovered{{/is_recovery}}"
    "{{#is_renotify}} (still){{/is_renotify}}: {{monitor.name}} on {{group}}"
    "{{^is_no_data}}, value {{value}}{{/is_no_data}}"
)


@dataclass(frozen=True)
class BookingRule:
    """Whether the hall's bookings (`bookings:`) open or close a monitor's gate."""

    only: Literal["unbooked", "booked"] = field(
        default="unbooked",
        metadata=doc("judge only while the hall is unbooked (lights on in an empty hall) "
                     "or only while booked"))
    before: Duration = field(
        default=Duration(0), metadata=doc("a booking starting within this counts already"))
    after: Duration = field(
        default=Duration(0), metadata=doc("a booking that ended within this still counts"))


@dataclass(frozen=True)
class EscalationStep:
    after: Duration = field(default=Duration(900),
                            metadata=doc("unacknowledged this long after the alert began"))
    notify: tuple[str, ...] = field(default=("everyone",),
                                    metadata=doc("who is told then (as notify:)"))


@dataclass(frozen=True)
class MonitorCommon:
    """What every monitor has. Each `type` is a subclass below, listed in `variants`."""

    variants: ClassVar[dict[str, type[MonitorCommon]]] = {}

    name: str = field(metadata=doc("monitor name: its state and its alerts are kept under it"))
    devices: tuple[str, ...] = field(
        default=(), metadata=doc("device ids it watches; none: every device"))
    message: str = field(
        default=DEFAULT_MESSAGE,
        metadata=doc("the notification, in Datadog's template syntax ({{#is_alert}}, "
                     "{{value}}, {{device.name}}, {{tags.room}} ...)"))
    notify: tuple[str, ...] = field(
        default=("on_duty",),
        metadata=doc("who is told: person names from people:, 'on_duty' (those available "
                     "now) or 'everyone'"))
    priority: int = field(default=3, metadata=doc("1 (highest) to 5, shown in messages"))
    renotify_interval: Duration = field(
        default=Duration(0),
        metadata=doc("while still alerting, tell them again this often; 0: once"))
    safety_critical: bool = field(
        default=False,
        metadata=doc("always reaches someone: everyone when nobody is on duty, and "
                     "downtimes do not silence it"))
    escalate: tuple[EscalationStep, ...] = field(
        default=(), metadata=doc("further people told while nobody acknowledges"))
    active: tuple[str, ...] = field(
        default=(),
        metadata=doc("weekly windows (gateway's time zone) it judges in, e.g. 'daily "
                     "23:00-06:00'; outside them its groups are OK; none: always"))
    booking: BookingRule | None = field(
        default=None, metadata=doc("judge only while the hall is (un)booked"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from name_problems("name", self.name, "monitor name")
        if not 1 <= self.priority <= 5:
            yield "priority", f"must be 1 (highest) to 5, got {self.priority}"
        if not self.notify:
            yield "notify", "must name someone: a person, 'on_duty' or 'everyone'"
        try:
            Template.parse(self.message)
        except TemplateError as exc:
            yield "message", str(exc)
        yield from window_problems("active", self.active)
        for i, step in enumerate(self.escalate):
            if not step.notify:
                yield f"escalate[{i}].notify", "must name someone"
            if i and step.after <= self.escalate[i - 1].after:
                yield f"escalate[{i}].after", "must come later than the step before"


@dataclass(frozen=True)
class ThresholdMonitor(MonitorCommon):
    """An aggregation of a metric over a trailing window, against warning and critical."""

    type: Literal["threshold"] = "threshold"
    metric: str = field(default="", metadata=doc("the metric, e.g. plug.power", required=True))
    aggregation: Aggregation = field(default="avg", metadata=doc("over the window"))
    window: Duration = field(default=Duration(300), metadata=doc("trailing window"))
    by: tuple[str, ...] = field(
        default=("device",), metadata=doc("tags that split it into groups, each alerting alone"))
    comparison: Direction = field(default="above", metadata=doc("alert above or below"))
    critical: float | None = field(default=None, metadata=doc("ALERT past this"))
    warning: float | None = field(default=None, metadata=doc("WARN past this"))
    critical_recovery: float | None = field(
        default=None, metadata=doc("back from ALERT only once past this (default: critical)"))
    warning_recovery: float | None = field(
        default=None, metadata=doc("back from WARN only once past this (default: warning)"))
    require_full_window: bool = field(
        default=False,
        metadata=doc("judge a group only once its readings span the whole window"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from MonitorCommon.check(self)
        if not self.metric:
            yield "metric", "is required (e.g. plug.power)"
        yield from positive("window", self.window, " seconds")
        if self.critical is None and self.warning is None:
            yield "critical", "give critical, warning or both"
        up = self.comparison == "above"

        def past(a: float, b: float) -> bool:  # a is further into trouble than b
            return a > b if up else a < b

        if self.critical is not None and self.warning is not None \
                and past(self.warning, self.critical):
            yield "warning", (f"must be {'below' if up else 'above'} critical "
                              f"({self.critical:g}) for comparison {self.comparison}")
        for level, recovery, key in ((self.critical, self.critical_recovery,
                                      "critical_recovery"),
                                     (self.warning, self.warning_recovery, "warning_recovery")):
            if recovery is not None:
                if level is None:
                    yield key, f"needs {key.removesuffix('_recovery')} too"
                elif past(recovery, level):
                    yield key, (f"must be {'at or below' if up else 'at or above'} "
                                f"{key.removesuffix('_recovery')} ({level:g}) for comparison "
                                f"{self.comparison}: it is where the trouble ends")


@dataclass(frozen=True)
class StateMonitor(MonitorCommon):
    """A condition on a metric's latest value that has held for a while."""

    type: Literal["state"] = "state"
    metric: str = field(default="", metadata=doc("the metric, e.g. plug.power", required=True))
    above: float | None = field(default=None, metadata=doc("the condition: value above this"))
    below: float | None = field(default=None, metadata=doc("the condition: value below this"))
    equals: float | None = field(default=None, metadata=doc("the condition: value equal to it"))
    duration: Duration = field(
        default=Duration(60), metadata=doc("how long it must hold before the alert"))
    level: Literal["critical", "warning"] = field(
        default="critical", metadata=doc("ALERT (critical) or WARN (warning) when it holds"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from MonitorCommon.check(self)
        if not self.metric:
            yield "metric", "is required (e.g. plug.power)"
        given = [k for k in ("above", "below", "equals") if getattr(self, k) is not None]
        if not given:
            yield "above", "give the condition: above, below or equals"
        elif "equals" in given and len(given) > 1:
            yield "equals", "cannot go with above or below"
        elif self.above is not None and self.below is not None and self.above >= self.below:
            yield "below", (f"with above {self.above:g} must be more than it: the condition "
                            "is a range between them")
        if self.duration < 0:
            yield "duration", "must be 0 or more"

    def holds(self, value: float) -> bool:
        if self.equals is not None:
            return value == self.equals
        return ((self.above is None or value > self.above)
                and (self.below is None or value < self.below))


@dataclass(frozen=True)
class NoDataMonitor(MonitorCommon):
    """Nothing heard from a device (or of one metric) for a timeframe; a device that said
    it went offline (its last will) is NO DATA at once."""

    type: Literal["no_data"] = "no_data"
    metric: str = field(default="", metadata=doc("only this metric counts; empty: any"))
    timeframe: Duration = field(
        default=Duration(600), metadata=doc("silence longer than this is NO DATA"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from MonitorCommon.check(self)
        yield from positive("timeframe", self.timeframe, " seconds")


@dataclass(frozen=True)
class AnomalyMonitor(MonitorCommon):
    """A rolling band from the trailing history, in the spirit of Datadog's `basic`
    anomaly algorithm: the mean of the history's points plus or minus `bounds`
    standard deviations; ALERT while the average of the last `alert_window` is outside."""

    type: Literal["anomaly"] = "anomaly"
    metric: str = field(default="", metadata=doc("the metric, e.g. plug.power", required=True))
    window: Duration = field(default=Duration(3600),
                             metadata=doc("trailing history the band is learnt from"))
    alert_window: Duration = field(default=Duration(300),
                                   metadata=doc("recent span whose average is judged"))
    bounds: float = field(default=2.0,
                          metadata=doc("width of the band in standard deviations (1 to 6)"))
    direction: Literal["both", "above", "below"] = field(
        default="both", metadata=doc("alert on leaving the band upwards, downwards or both"))
    by: tuple[str, ...] = field(
        default=("device",), metadata=doc("tags that split it into groups, each alerting alone"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from MonitorCommon.check(self)
        if not self.metric:
            yield "metric", "is required (e.g. plug.power)"
        yield from positive("alert_window", self.alert_window, " seconds")
        if self.alert_window * 2 > self.window:
            yield "alert_window", (f"must be at most half the window ({self.window:g} s): the "
                                   "band is learnt from the history before it")
        if not 1 <= self.bounds <= 6:
            yield "bounds", f"must be 1 to 6 standard deviations, got {self.bounds:g}"


@dataclass(frozen=True)
class BookingsSection:
    """The hall's bookings, from an iCalendar file or URL (recurring events and their
    exceptions included)."""

    calendar: str = field(default="", metadata=doc("a .ics path (relative: to the config's "
                                                   "folder) or an http(s) URL",
                                                   required=True))
    refresh: Duration = field(default=Duration(900), metadata=doc("how often it is read again"))

    def check(self) -> Iterator[tuple[str, str]]:
        if not self.calendar:
            yield "calendar", "give an .ics file or an http(s):// URL"
        yield from positive("refresh", self.refresh, " seconds")


MONITORS: dict[str, type[MonitorCommon]] = {
    "threshold": ThresholdMonitor, "state": StateMonitor, "no_data": NoDataMonitor,
    "anomaly": AnomalyMonitor}
MonitorCommon.variants.update(MONITORS)
