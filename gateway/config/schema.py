"""The configuration file's shape: frozen dataclasses with their defaults and docs.

This shape is a contract (README, deploy/examples): extend it, don't rename it.
Each class may define `check()` returning (key, message) pairs for rules that
span several fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.config.checks import CheckConfig
from gateway.config.validate import Bytes, Duration, Secret, doc
from gateway.config.weekly import window_problems


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def name_problems(key: str, value: str, what: str) -> Iterator[tuple[str, str]]:
    if value and not _NAME.match(value):
        yield key, f"{what} {value!r} may hold only letters, digits, '_', '.', '-'"


def port_problems(key: str, port: int) -> Iterator[tuple[str, str]]:
    if not 0 < port < 65536:
        yield key, f"must be a TCP port between 1 and 65535, got {port}"


def url_problems(key: str, url: str) -> Iterator[tuple[str, str]]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        yield key, f"must be an http:// or https:// URL with a host, got {url!r}"
        return
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        yield key, f"has a port out of range (1-65535): {url!r}"


def positive(key: str, value: float, what: str = "") -> Iterator[tuple[str, str]]:
    if not value > 0:
        yield key, f"must be more than 0{what}, got {value:g}"


@dataclass(frozen=True)
class HttpConfig:
    enabled: bool = field(default=True, metadata=doc("serve /metrics and /status"))
    host: str = field(default="127.0.0.1", metadata=doc("address to listen on"))
    port: int = field(default=9108, metadata=doc("port for /metrics (Prometheus) and /status"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from port_problems("port", self.port)


@dataclass(frozen=True)
class DeviceTimeConfig:
    """When a device's own clock is believed (see README, "Timestamps")."""

    enabled: bool = field(
        default=True,
        metadata=doc("stamp readings with the time their payload says they were measured, where "
                     "the device's profile says where that is (Tasmota Time, Shelly ts, "
                     "Zigbee2MQTT last_seen...); false: every reading gets its receive time"),
    )
    max_ahead: Duration = field(
        default=Duration(120),
        metadata=doc("a device time further than this ahead of the receive time is not "
                     "believed: the reading gets its receive time (counted, logged)"),
    )
    max_behind: Duration | None = field(
        default=None,
        metadata=doc("a device time further than this behind the receive time is not believed; "
                     "unset: mqtt.session_expiry plus a day, so messages the broker kept through "
                     "an outage keep their time while a clock stuck in 1970 or 2000 is caught"),
    )

    def check(self) -> Iterator[tuple[str, str]]:
        if self.max_behind is not None and self.max_behind < 60:
            yield "max_behind", ("must be at least 1m: a message takes a moment to arrive, "
                                 "and Tasmota's Time has whole seconds")


@dataclass(frozen=True)
class GatewaySection:
    name: str = field(metadata=doc("this gateway's name; tags every reading as gateway:<name>"))
    data_dir: str = field(default="./data", metadata=doc("where the SQLite store lives"))
    timezone: str = field(
        default="UTC",
        metadata=doc("IANA time zone for schedules, and of device clocks that give local time "
                     "without an offset (Tasmota's Time) unless a device names its own"))
    tags: Mapping[str, str] = field(default_factory=_empty,
                                    metadata=doc("tags added to every reading"))
    self_metrics_interval: float = field(
        default=10.0, metadata=doc("seconds between gateway.* self-metric readings")
    )
    profiles_dirs: tuple[str, ...] = field(
        default=(), metadata=doc("extra folders of device profiles, searched first")
    )
    http: HttpConfig = field(default_factory=HttpConfig, metadata=doc("status endpoint"))
    device_time: DeviceTimeConfig = field(
        default_factory=DeviceTimeConfig,
        metadata=doc("when to believe the time a device puts in its payloads"))
    status_led_pin: int | None = field(default=None, metadata=doc(
        "BCM GPIO number of an LED that shows how the gateway is: lit steady when all "
        "is well, slow blink while readings wait to be sent, fast blink while it is "
        "degraded or an alert is open (gpiozero)"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from name_problems("name", self.name, "gateway name")
        if self.status_led_pin is not None and not 0 <= self.status_led_pin <= 53:
            yield "status_led_pin", "a BCM GPIO number, 0 to 53 (e.g. 23)"
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            yield "timezone", f"unknown time zone {self.timezone!r} (e.g. Europe/London)"
        if self.self_metrics_interval <= 0:
            yield "self_metrics_interval", "must be more than 0 seconds"


@dataclass(frozen=True)
class TlsConfig:
    ca_file: str | None = field(default=None, metadata=doc("CA bundle; system CAs when unset"))
    cert_file: str | None = field(default=None, metadata=doc("client certificate (PEM)"))
    key_file: str | None = field(default=None, metadata=doc("client private key (PEM)"))
    insecure: bool = field(default=False, metadata=doc("skip host name checks (testing only)"))

    def check(self) -> Iterator[tuple[str, str]]:
        if (self.cert_file is None) != (self.key_file is None):
            yield "", "cert_file and key_file must be given together"


@dataclass(frozen=True)
class MqttSection:
    host: str = field(default="127.0.0.1", metadata=doc("broker host"))
    port: int = field(default=1883, metadata=doc("broker port"))
    client_id: str = field(
        default="", metadata=doc("fixed client id for the persistent session; gateway-<name>")
    )
    username: str | None = field(default=None, metadata=doc("broker user name"))
    password: Secret | None = field(default=None, metadata=doc("broker password", secret=True))
    tls: TlsConfig | None = field(default=None, metadata=doc("TLS settings; plain TCP if unset"))
    protocol: Literal["5", "3.1.1"] = field(
        default="5",
        metadata=doc("MQTT version: 5, or 3.1.1 for brokers without MQTT 5 (no session expiry "
                     "or Receive Maximum then; the gateway still bounds its own window)"),
    )
    keepalive: int = field(default=60, metadata=doc("seconds between MQTT pings"))
    session_expiry: int = field(
        default=7 * 24 * 3600,
        metadata=doc("seconds the broker keeps the session (and queued messages) while away"),
    )
    receive_maximum: int = field(
        default=2000,
        metadata=doc("unacknowledged QoS 1 messages the broker may send at once (bounds memory)"),
    )
    max_payload_bytes: int = field(
        default=65536, metadata=doc("larger payloads are counted as too_large and not decoded")
    )
    max_readings_per_message: int = field(
        default=500,
        metadata=doc("a message giving more readings (or unreadable values) is refused whole "
                     "as too_many_readings; real devices send dozens"),
    )
    reconnect_min: float = field(default=1.0, metadata=doc("first reconnect delay, seconds"))
    reconnect_max: float = field(default=60.0, metadata=doc("longest reconnect delay, seconds"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from port_problems("port", self.port)
        if not self.host.strip():
            yield "host", "must name the broker (e.g. 127.0.0.1)"
        if self.password is not None and self.username is None:
            yield "password", "a password needs a username"
        if not 1 <= self.receive_maximum <= 65535:
            yield "receive_maximum", "must be between 1 and 65535"
        if self.max_readings_per_message < 1:
            yield "max_readings_per_message", "must be at least 1"
        if self.reconnect_min <= 0 or self.reconnect_max < self.reconnect_min:
            yield "reconnect_max", "need 0 < reconnect_min <= reconnect_max"
        # MQTT's keep-alive is a 16-bit count of seconds; 0 would turn pings off.
        if not 5 <= self.keepalive <= 65535:
            yield "keepalive", f"must be between 5 and 65535 seconds, got {self.keepalive}"
        if not 0 <= self.session_expiry <= 0xFFFFFFFF:
            yield "session_expiry", "must be between 0 and 4294967295 seconds"
        if self.max_payload_bytes < 1:
            yield "max_payload_bytes", "must be at least 1"


Priority = Literal["critical", "high", "normal", "low"]


@dataclass(frozen=True)
class CompactionRule:
    """Readings older than `older_than` may be rolled up into `bucket`-long points."""

    older_than: Duration = field(metadata=doc("readings at least this old (e.g. 1h)"))
    bucket: Duration = field(metadata=doc("are folded into one point per series per bucket "
                                          "(e.g. 1m)"))
    priorities: tuple[Priority, ...] = field(
        default=("low", "normal", "high"), metadata=doc("priorities the rule applies to"))

    def check(self) -> Iterator[tuple[str, str]]:
        if self.bucket < 1:
            yield "bucket", "must be at least 1 second"
        if not self.priorities:
            yield "priorities", "name at least one priority"


def _default_compaction() -> tuple[CompactionRule, ...]:
    return (
        CompactionRule(Duration(3600), Duration(60)),
        CompactionRule(Duration(86400), Duration(900)),
        CompactionRule(Duration(86400), Duration(60), ("critical",)),
    )


@dataclass(frozen=True)
class StoreSection:
    durability: Literal["full", "normal"] = field(
        default="full",
        metadata=doc("full: a power cut loses nothing accepted; normal: fewer fsyncs, may lose "
                     "the last commits on power loss (never corrupts)"),
    )
    commit_interval: float = field(
        default=1.0,
        metadata=doc("longest wait, seconds, before a group commit: each commit costs the "
                     "SD card a page or two and an fsync; messages are acknowledged after it"),
    )
    commit_rows: int = field(default=5000, metadata=doc("commit once this many readings wait"))
    max_bytes: Bytes = field(
        default=Bytes(1024**3),
        metadata=doc("most space the store may take on disk (e.g. 500MB, 2GiB); beyond "
                     "compact_at of it old readings are compacted, beyond it evicted"),
    )
    min_free_bytes: Bytes = field(
        default=Bytes(100 * 1000**2),
        metadata=doc("leave this much of the file system free: the store's budget shrinks to "
                     "fit; 0: only max_bytes counts"),
    )
    max_age: Duration = field(
        default=Duration(0),
        metadata=doc("readings older than this are evicted (e.g. 30d); 0: no age limit"),
    )
    compact_at: float = field(
        default=0.8,
        metadata=doc("fraction of the budget at which old readings start to be compacted"),
    )
    compaction: tuple[CompactionRule, ...] = field(
        default_factory=_default_compaction,
        metadata=doc("rollup rules: older_than, bucket, priorities; the coarsest that applies "
                     "to a reading wins; [] turns compaction off"),
    )
    check_on_start: Literal["quick", "full", "off"] = field(
        default="quick",
        metadata=doc("integrity check when the gateway starts; a corrupt store is moved aside "
                     "and what can be read is salvaged"),
    )

    def check(self) -> Iterator[tuple[str, str]]:
        if not 0 < self.commit_interval <= 10:
            yield "commit_interval", "must be between 0 and 10 seconds"
        if self.commit_rows < 1:
            yield "commit_rows", "must be at least 1"
        if self.max_bytes < 1024**2:
            yield "max_bytes", "must be at least 1MiB"
        if not 0 < self.compact_at <= 1:
            yield "compact_at", "must be more than 0 and at most 1"




@dataclass(frozen=True)
class DeviceConfig:
    id: str = field(metadata=doc("device id; tags its readings as device:<id>"))
    profile: str = field(metadata=doc("device profile name, from devices/*.yaml"))
    priority: Priority = field(default="normal", metadata=doc("critical|high|normal|low"))
    tags: Mapping[str, str] = field(default_factory=_empty, metadata=doc("tags for this device"))
    params: Mapping[str, Any] = field(
        default_factory=_empty, metadata=doc("the profile's parameters (topic, prefix, ...)")
    )
    time: Literal["device", "receive"] = field(
        default="device",
        metadata=doc("device: readings keep the time their payload gives, where the profile "
                     "says where it is (within gateway.device_time's window); receive: ignore "
                     "this device's clock, stamp its readings when they arrive"))
    timezone: str = field(
        default="",
        metadata=doc("IANA time zone the device's clock is set to, for payload times without "
                     "an offset (Tasmota's Time); default: gateway.timezone"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from name_problems("id", self.id, "device id")
        if self.timezone:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                yield "timezone", f"unknown time zone {self.timezone!r} (e.g. Europe/London)"


@dataclass(frozen=True)
class ForwardWhen:
    """When a sink may send: while a device's latest value says so, and/or within
    weekly windows. Until then its readings wait in the store (store and forward)."""

    metric: str = field(default="", metadata=doc(
        "a metric whose latest value decides, e.g. vehicle.ignition (0: parked)"))
    device: str = field(default="", metadata=doc("the device whose value it is"))
    equals: float | None = field(default=None, metadata=doc("send while it equals this"))
    below: float | None = field(default=None, metadata=doc("send while it is below this"))
    above: float | None = field(default=None, metadata=doc("send while it is above this"))
    during: tuple[str, ...] = field(default=(), metadata=doc(
        "weekly windows in gateway.timezone, e.g. ['Mon-Fri 18:00-08:00', 'Sat,Sun']: "
        "send only within one"))

    def check(self) -> Iterator[tuple[str, str]]:
        tests = [t for t in (self.equals, self.below, self.above) if t is not None]
        if self.metric or self.device or tests:
            if not self.metric or not self.device:
                yield "metric", "name both the metric and the device whose value decides"
            if len(tests) != 1:
                yield "equals", "give one of equals, below or above"
        elif not self.during:
            yield "", "give a metric and device with equals/below/above, or during, or both"
        yield from window_problems("during", self.during)


@dataclass(frozen=True)
class SinkCommon:
    """Settings every sink has. Each kind of sink has its own subclass, beside the sink
    (gateway/sinks/<kind>_config.py), with `type` and its own settings; the sink
    registry (gateway.sinks.registry) lists them in `variants`, by `type`, and the
    config is read as whichever a `sinks[]` entry's `type` names."""

    variants: ClassVar[dict[str, type[SinkCommon]]] = {}

    name: str = field(metadata=doc("sink name; its cursor in the store is kept under it"))
    batch_size: int = field(default=5000, metadata=doc("most readings per request"))
    timeout: float = field(default=30.0, metadata=doc("seconds before a request is abandoned"))
    backoff_min: float = field(default=1.0, metadata=doc("first retry delay, seconds"))
    backoff_max: float = field(default=300.0, metadata=doc("longest retry delay, seconds"))
    max_age: Duration = field(
        default=Duration(0),
        metadata=doc("readings older than this are not sent here (counted as dropped "
                     "max_age), e.g. 15m for a live view; 0: send whatever waits"),
    )
    forward_when: ForwardWhen | None = field(default=None, metadata=doc(
        "send only while this holds (a van parked at the depot, the cheap hours); "
        "meanwhile everything waits in the store and status says why"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from name_problems("name", self.name, "sink name")
        if self.batch_size < 1:
            yield "batch_size", "must be at least 1"
        yield from positive("timeout", self.timeout, " seconds")
        if self.backoff_min <= 0 or self.backoff_max < self.backoff_min:
            yield "backoff_max", "need 0 < backoff_min <= backoff_max"




@dataclass(frozen=True)
class SourceCommon:
    """Settings every source besides the local broker has (the broker is `mqtt:`). Each
    kind of source has its own subclass, beside the source (gateway/sources/<kind>_config.py),
    with `type` and its own settings; the source registry (gateway.sources.registry) lists
    them in `variants`, by `type`, as the sink registry does for sinks."""

    variants: ClassVar[dict[str, type[SourceCommon]]] = {}

    name: str = field(metadata=doc("source name, as status and the logs show it"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from name_problems("name", self.name, "source name")


# The control plane's settings live beside it; they import only the helpers above.
from gateway.monitors.config import BookingsSection, MonitorCommon  # noqa: E402
from gateway.notify.config import AlertingSection, DowntimeConfig, Person  # noqa: E402


@dataclass(frozen=True)
class TripsSection:
    """A vehicle's trips: from its ignition on to off. Every reading of the trip's devices
    in between carries the tag trip:<when it began>, so one trip can be charted whole."""

    ignition: str = field(metadata=doc(
        "the device whose vehicle.ignition (1 on, 0 off) begins and ends trips: the "
        "elm327 device"))
    devices: tuple[str, ...] = field(default=(), metadata=doc(
        "devices whose readings are tagged with the trip; empty: every device"))


@dataclass(frozen=True)
class Config:
    gateway: GatewaySection = field(metadata=doc("who this gateway is"))
    mqtt: MqttSection = field(default_factory=MqttSection, metadata=doc("the local broker"))
    store: StoreSection = field(default_factory=StoreSection, metadata=doc("the SQLite outbox"))
    devices: tuple[DeviceConfig, ...] = field(default=(), metadata=doc("devices to read"))
    sinks: tuple[SinkCommon, ...] = field(default=(), metadata=doc("where readings go"))
    monitors: tuple[MonitorCommon, ...] = field(
        default=(), metadata=doc("alert rules, each by its `type` (see Alerts)"))
    people: tuple[Person, ...] = field(default=(), metadata=doc("who alerts reach"))
    alerting: AlertingSection = field(default_factory=AlertingSection,
                                      metadata=doc("how notifications are delivered"))
    downtimes: tuple[DowntimeConfig, ...] = field(
        default=(), metadata=doc("recurring quiet times for routine monitors"))
    bookings: BookingsSection | None = field(
        default=None, metadata=doc("the hall's booking calendar, for monitors' booking:"))
    sources: tuple[SourceCommon, ...] = field(
        default=(),
        metadata=doc("sources besides the local broker, each by its `type`: serial ports "
                     "(serial), ELM327 OBD-II adapters (elm327)"))
    trips: TripsSection | None = field(default=None, metadata=doc(
        "a vehicle's trips, tagged on its readings"))
    checks: tuple[CheckConfig, ...] = field(default=(), metadata=doc(
        "local checks: measurements the gateway makes itself, each at its interval"))

    def __post_init__(self) -> None:
        # Each local check is a device of its own (profile check), so its readings are
        # shown, watched and forwarded as any device's are.
        made = tuple(DeviceConfig(id=c.device or c.name, profile="check",
                                  params=MappingProxyType({"check": c.name}))
                     for c in self.checks if isinstance(c, CheckConfig))
        if made and not any(d.profile == "check" for d in self.devices
                            if isinstance(d, DeviceConfig)):
            object.__setattr__(self, "devices", (*self.devices, *made))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from _duplicates("devices", [d.id for d in self.devices if d], "device id")
        yield from _duplicates("sinks", [s.name for s in self.sinks if s], "sink name")
        yield from _duplicates("sources", [s.name for s in self.sources if s], "source name")
        yield from _duplicates("monitors", [m.name for m in self.monitors if m], "monitor name")
        yield from _duplicates("checks", [c.name for c in self.checks if c], "check name")
        yield from _duplicates("people", [p.name for p in self.people if p], "person name")
        yield from self._monitor_references()

    def _monitor_references(self) -> Iterator[tuple[str, str]]:
        devices = {d.id for d in self.devices if d}
        people = {p.name for p in self.people if p}
        for i, m in enumerate(self.monitors):
            if not m:
                continue
            for j, device in enumerate(m.devices):
                if device not in devices:
                    yield (f"monitors[{i}].devices[{j}]",
                           f"no device {device!r} among devices: ({_choices(devices)})")
            named = [(f"monitors[{i}].notify[{j}]", who) for j, who in enumerate(m.notify)]
            named += [(f"monitors[{i}].escalate[{k}].notify[{j}]", who)
                      for k, step in enumerate(m.escalate) for j, who in enumerate(step.notify)]
            for key, who in named:
                if who not in people and who not in ("on_duty", "everyone"):
                    yield (key, f"no person {who!r} among people: (name one of "
                                f"{_choices(people)}, or 'on_duty' or 'everyone')")
            if m.booking is not None and self.bookings is None:
                yield (f"monitors[{i}].booking", "needs the hall's calendar: add bookings: "
                                                 "{calendar: bookings.ics}")
        monitors = {m.name for m in self.monitors if m}
        for i, d in enumerate(self.downtimes):
            for j, name in enumerate(d.monitors if d else ()):
                if name not in monitors:
                    yield (f"downtimes[{i}].monitors[{j}]",
                           f"no monitor {name!r} among monitors: ({_choices(monitors)})")
        if self.monitors and not self.people:
            yield "people", "monitors need someone to tell: add people with their channels"
        if isinstance(self.trips, TripsSection):
            named = [("trips.ignition", self.trips.ignition)]
            named += [(f"trips.devices[{j}]", d) for j, d in enumerate(self.trips.devices)]
            for key, device in named:
                if device not in devices:
                    yield key, f"no device {device!r} among devices: ({_choices(devices)})"

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"gateway-{self.gateway.name}"


def _choices(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def _duplicates(key: str, names: list[str], what: str) -> Iterator[tuple[str, str]]:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            yield f"{key}[{i}]", f"{what} {name!r} is also used by {key}[{seen[name]}]"
        seen.setdefault(name, i)
