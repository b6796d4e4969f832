"""Simulated Tasmota and Shelly plugs publishing numbered readings over MQTT, QoS 1.

Each plug has its own MQTT connection (as a real device does) and publishes what
its firmware publishes: Tasmota ``tele/<topic>/SENSOR`` with an ENERGY block
(arrays on a two-channel device), Shelly Gen2 ``<prefix>/status/switch:N``.
Message number ``n`` carries power ``n`` (``n + 0.25`` on a Tasmota's second
channel), so every reading can be found again downstream.

A publish counts as *accepted* only when the broker's PUBACK arrived
(``on_publish``): that is the set the gateway promises to deliver.

What a message must become in VictoriaMetrics is written out here, independently
of the gateway's decoder, as :data:`Key` tuples ``(series name, labels, value)``;
:func:`readings_in` reads the same tuples back and :func:`difference` explains
what is missing or extra.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Self

import paho.mqtt.client as mqtt

#: (VictoriaMetrics series name, frozenset of (label, value) pairs, value rounded to 6 places)
Key = tuple[str, frozenset[tuple[str, str]], float]


def _key(name: str, labels: Mapping[str, str], value: float) -> Key:
    return name, frozenset(labels.items()), round(float(value), 6)


@dataclass(frozen=True)
class SimulatedPlug:
    """One device: profile ``tasmota`` (1 or 2 channels) or ``shelly`` (1 to 4 switches)."""

    id: str
    profile: str
    channels: int = 1
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def topic_name(self) -> str:
        """The device's Tasmota topic or Shelly prefix."""
        return self.id.replace("-", "_") if self.profile == "tasmota" else f"shelly-{self.id}"

    def device_config(self) -> dict:
        """This plug's entry under ``devices:`` in the gateway config."""
        entry: dict = {"id": self.id, "profile": self.profile, "tags": dict(self.tags)}
        if self.profile == "tasmota":
            entry["topic"] = self.topic_name
            # Every message carries the same fixed Time (see message()), no clock:
            # its readings are stamped on receipt, as devices without a time are.
            entry["time"] = "receive"
        else:
            entry["prefix"] = self.topic_name
        return entry

    def message(self, n: int) -> tuple[str, bytes]:
        """Topic and payload of message number ``n``."""
        if self.profile == "tasmota":
            energy: dict = {"TotalStartTime": "2025-01-04T09:12:44", "Total": n / 100,
                            "Yesterday": 1.203, "Today": 0.521, "Voltage": 220 + n % 20}
            if self.channels == 1:
                energy.update(Power=n, Current=n / 1000)
            else:
                energy.update(Power=[n, n + 0.25], Current=[n / 1000, 0.5])
            # Today/Yesterday are decoded too; kept constant so they are easy to expect.
            body = {"Time": "2026-11-20T10:15:00", "ENERGY": energy}
            return f"tele/{self.topic_name}/SENSOR", json.dumps(body).encode()
        switch = n % self.channels
        body = {"id": switch, "source": "timer", "output": True, "apower": n,
                "voltage": 230 + n % 10, "current": n / 1000,
                "aenergy": {"total": n + 0.5, "by_minute": [0.0, 0.0, 0.0],
                            "minute_ts": 1788945240},
                "temperature": {"tC": 40.5, "tF": 104.9}}
        return f"{self.topic_name}/status/switch:{switch}", json.dumps(body).encode()

    def readings(self, n: int, gateway_labels: Mapping[str, str]) -> list[Key]:
        """What message ``n`` must become in VictoriaMetrics (see the profiles in devices/)."""
        base = {**gateway_labels, **self.tags, "device": self.id}
        if self.profile == "tasmota":
            out = [_key("plug_voltage", base, 220 + n % 20),
                   _key("plug_energy_total", base, n / 100),
                   _key("plug_energy_today", base, 0.521),
                   _key("plug_energy_yesterday", base, 1.203)]
            if self.channels == 1:
                out += [_key("plug_power", base, n), _key("plug_current", base, n / 1000)]
            else:
                one, two = {**base, "channel": "1"}, {**base, "channel": "2"}
                out += [_key("plug_power", one, n), _key("plug_power", two, n + 0.25),
                        _key("plug_current", one, n / 1000), _key("plug_current", two, 0.5)]
            return out
        labels = {**base, "channel": str(n % self.channels)}
        return [_key("plug_switch", labels, 1), _key("plug_power", labels, n),
                _key("plug_voltage", labels, 230 + n % 10),
                _key("plug_current", labels, n / 1000),
                _key("plug_energy_total", labels, (n + 0.5) * 0.001),
                _key("device_temperature", labels, 40.5)]


class PlugConnection:
    """One plug's MQTT client (v3.1.1, like the firmware) and which publishes were PUBACKed."""

    def __init__(self, plug: SimulatedPlug, host: str, port: int) -> None:
        self.plug = plug
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"sim-{plug.id}", protocol=mqtt.MQTTv311)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._acked_mids: set[int] = set()
        self._sent: list[tuple[int, int]] = []  # (message number, mid)
        self._host, self._port = host, port

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int,
                    reason: object, properties: object) -> None:
        with self._lock:
            self._acked_mids.add(mid)

    def connect(self, timeout: float = 10.0) -> None:
        self.client.connect(self._host, self._port, keepalive=30)
        self.client.loop_start()
        deadline = time.monotonic() + timeout
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                raise RuntimeError(f"plug {self.plug.id} could not connect to "
                                   f"{self._host}:{self._port}")
            time.sleep(0.02)

    def publish(self, n: int) -> None:
        topic, payload = self.plug.message(n)
        info = self.client.publish(topic, payload, qos=1)
        with self._lock:
            self._sent.append((n, info.mid))
        if len(self._sent) >= 65535:
            raise RuntimeError("message ids would repeat: use more plugs or fewer messages")

    @property
    def outstanding(self) -> int:
        with self._lock:
            return len(self._sent) - len(self._acked_mids)

    def accepted(self) -> list[int]:
        """Numbers of the messages the broker acknowledged."""
        with self._lock:
            return [n for n, mid in self._sent if mid in self._acked_mids]

    def sent(self) -> list[int]:
        with self._lock:
            return [n for n, _ in self._sent]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Fleet:
    """Several plugs publishing numbered messages concurrently, one thread per plug.

    Message numbers are unique across the fleet: plug ``i`` of ``k`` publishes
    ``start + i, start + i + k, ...``. At most ``window`` unacknowledged publishes
    per plug are outstanding (a device does not buffer without limit), so a plug
    whose broker is away waits instead of queueing in memory.
    """

    def __init__(self, plugs: Sequence[SimulatedPlug], host: str, port: int,
                 window: int = 200) -> None:
        self.plugs = list(plugs)
        self.connections = [PlugConnection(p, host, port) for p in self.plugs]
        self.window = window
        self._threads: list[threading.Thread] = []
        self._errors: list[Exception] = []
        self._next = 0
        self._stopping = False

    def __enter__(self) -> Self:
        for c in self.connections:
            c.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        for c in self.connections:
            c.close()

    def start(self, messages: int, rate: float | None = None) -> None:
        """Begin publishing ``messages`` more messages in background threads.

        ``rate`` is messages per second for the whole fleet (None: as fast as
        the broker acknowledges).
        """
        first, self._next = self._next, self._next + messages
        k = len(self.connections)
        for i, conn in enumerate(self.connections):
            numbers = range(first + i, first + messages, k)
            per_plug = None if rate is None else rate / k
            t = threading.Thread(target=self._run, args=(conn, numbers, per_plug),
                                 name=f"plug-{conn.plug.id}", daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, conn: PlugConnection, numbers: range, rate: float | None) -> None:
        try:
            started = time.monotonic()
            for i, n in enumerate(numbers):
                if self._stopping:
                    return
                if rate is not None:
                    due = started + i / rate
                    pause = due - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                while conn.outstanding >= self.window and not self._stopping:
                    time.sleep(0.005)
                conn.publish(n)
        except Exception as exc:  # noqa: BLE001 - reported by wait(), in the test's thread
            self._errors.append(exc)

    @property
    def published(self) -> int:
        return sum(len(c.sent()) for c in self.connections)

    def wait(self, timeout: float) -> None:
        """Wait until every thread has published and every publish was acknowledged."""
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        while any(c.outstanding for c in self.connections) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._errors:
            raise RuntimeError(f"a plug failed to publish: {self._errors[0]!r}")
        busy = [t.name for t in self._threads if t.is_alive()]
        waiting = {c.plug.id: c.outstanding for c in self.connections if c.outstanding}
        if busy or waiting:
            raise AssertionError(f"publishing not finished within {timeout} s: still "
                                 f"publishing {busy}, PUBACK missing {waiting}")
        self._threads = []

    def stop(self) -> None:
        self._stopping = True
        for t in self._threads:
            t.join(10)
        self._threads = []

    def accepted(self) -> list[tuple[SimulatedPlug, int]]:
        """(plug, message number) for every publish the broker acknowledged."""
        return [(c.plug, n) for c in self.connections for n in c.accepted()]

    def sent(self) -> list[tuple[SimulatedPlug, int]]:
        return [(c.plug, n) for c in self.connections for n in c.sent()]

    def expected(self, gateway_labels: Mapping[str, str],
                 messages: Iterable[tuple[SimulatedPlug, int]] | None = None) -> Counter[Key]:
        """The readings the accepted messages (or ``messages``) must become."""
        out: Counter[Key] = Counter()
        for plug, n in (self.accepted() if messages is None else messages):
            out.update(plug.readings(n, gateway_labels))
        return out


def readings_in(victoria, match: str = '{__name__=~"plug_.*|device_.*"}') -> Counter[Key]:
    """Every stored sample of the matching series as :data:`Key` tuples, counted."""
    out: Counter[Key] = Counter()
    for item in victoria.export(match):
        labels = dict(item["metric"])
        name = labels.pop("__name__")
        for value in item["values"]:
            out[_key(name, labels, value)] += 1
    return out


def difference(expected: Counter[Key], got: Counter[Key], limit: int = 10) -> str:
    """Human-readable summary of what is missing from ``got`` and what is extra."""
    missing = expected - got
    extra = got - expected
    lines = [(f"expected {sum(expected.values())} readings, found {sum(got.values())}: "
              f"{sum(missing.values())} missing, {sum(extra.values())} extra")]

    def order(item: tuple[Key, int]) -> tuple:
        # plug_power first: its value is the message number, which identifies the message
        (name, labels, value), _ = item
        return name != "plug_power", name, sorted(labels), value

    for title, items in (("missing", missing), ("extra", extra)):
        for (name, labels, value), count in sorted(items.items(), key=order)[:limit]:
            tags = ",".join(f"{k}={v}" for k, v in sorted(labels))
            lines.append(f"  {title}: {name}{{{tags}}} {value} x{count}")
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more {title}")
    return "\n".join(lines)


def wait_for_readings(victoria, expected: Counter[Key], timeout: float,
                      match: str = '{__name__=~"plug_.*|device_.*"}',
                      quiet: float | None = None) -> Counter[Key]:
    """Poll VictoriaMetrics until every expected reading is there (or time is up).

    With ``quiet``, also stop once nothing has changed for that many seconds (for
    tests that expect readings to stay missing). Returns what was found last;
    compare it with :func:`difference`.
    """
    deadline = time.monotonic() + timeout
    last: Counter[Key] | None = None
    changed = time.monotonic()
    while True:
        got = readings_in(victoria, match)
        now = time.monotonic()
        if got != last:
            last, changed = got, now
        if not (expected - got) or now > deadline:
            return got
        if quiet is not None and now - changed >= quiet:
            return got
        time.sleep(1.0)
