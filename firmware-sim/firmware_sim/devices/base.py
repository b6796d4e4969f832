"""What every simulated device has: an id, its settings, its MQTT link, and its actions.

A device model publishes what its real firmware publishes, when the firmware
would: births and last wills around each connection, telemetry on the
firmware's own period, and a state message whenever something is switched.
Scenario steps reach a device through `perform(action, args)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from firmware_sim.engine import Message, Simulation
from firmware_sim.network import Link, Network


class ScenarioError(ValueError):
    """A scenario or site file asks for something that cannot be done; the text says what."""


def perform_action(target: Any, who: str, action: str, args: Mapping[str, Any]) -> None:
    """Run `target.do_<action>(args)` if `action` is one of `target.actions`.

    `who` names the target in the error ("device 'kitchen-urn' (tasmota)").
    """
    handler: Callable[[Mapping[str, Any]], None] | None = getattr(
        target, "do_" + action.replace("-", "_"), None)
    if handler is None or action not in target.actions:
        raise ScenarioError(f"{who} cannot {action!r}; it can: "
                            + (", ".join(target.actions) or "nothing"))
    handler(args)


class SimDevice:
    """Base of all simulated devices. Subclasses set `kind` and override the hooks."""

    kind: ClassVar[str] = ""
    actions: ClassVar[tuple[str, ...]] = ()
    #: the keys a site file may give this kind (a typo is an error, not ignored)
    settings: ClassVar[tuple[str, ...]] = ("id", "kind")

    def __init__(self, sim: Simulation, spec: Mapping[str, Any], env: Any) -> None:
        self.sim = sim
        self.spec = dict(spec)
        self.id: str = str(spec["id"])
        unknown = set(spec) - set(self.settings)
        if unknown:
            raise ScenarioError(f"device {self.id!r} ({self.kind}): no setting(s) "
                                f"{', '.join(sorted(unknown))}; it takes: "
                                + ", ".join(s for s in self.settings if s not in ("id", "kind")))
        self.env = env  # the site's shared physical world (the hall, the car)
        self.rng = sim.rng(self.id)

    def gateway_devices(self) -> list[dict[str, Any]]:
        """The gateway config entries (id, profile, params...) that read this device."""
        return []

    def gateway_sources(self) -> list[dict[str, Any]]:
        """The gateway `sources:` entries this device needs (a serial port), if any."""
        return []

    def start(self, net: Network | None) -> None:
        """Connect (if MQTT) and schedule the firmware's periodic work."""

    def children(self) -> dict[str, Any]:
        """Devices reached through this one (a Zigbee bridge's bulbs), by id."""
        return {}

    def endpoint(self) -> str | None:
        """Where a user connects to this device, if not the broker (a serial port's path)."""
        return None

    def describe(self) -> str:
        """One line about the device's state, for progress output."""
        return ""

    def stop(self) -> None:
        """Release what the device holds (links, pseudo-terminals)."""

    def perform(self, action: str, args: Mapping[str, Any]) -> None:
        perform_action(self, f"device {self.id!r} ({self.kind})", action, args)


class MqttDevice(SimDevice):
    """A device with its own MQTT connection and last will."""

    actions: ClassVar[tuple[str, ...]] = ("wifi-drop", "flap", "broker-lost", "broker-back")
    profile: ClassVar[str] = ""  # the gateway's device profile that reads this firmware
    settings: ClassVar[tuple[str, ...]] = (*SimDevice.settings, "priority", "tags", "uptime",
                                           "signal")

    def __init__(self, sim: Simulation, spec: Mapping[str, Any], env: Any) -> None:
        super().__init__(sim, spec, env)
        self.net: Network | None = None
        self.link: Link | None = None
        self.online = False
        self.connected_at = sim.now
        self.booted_at = sim.now - float(spec.get("uptime", 3 * 86400))

    # -- what subclasses say -------------------------------------------------------------------

    def profile_params(self) -> dict[str, Any]:
        """The gateway profile's parameters for this device (topic, prefix...)."""
        return {}

    def gateway_devices(self) -> list[dict[str, Any]]:
        entry: dict[str, Any] = {"id": self.id, "profile": self.profile, **self.profile_params()}
        if self.spec.get("priority"):
            entry["priority"] = self.spec["priority"]
        if self.spec.get("tags"):
            entry["tags"] = dict(self.spec["tags"])
        return [entry]

    def client_id(self) -> str:
        return self.id

    def will(self) -> Message | None:
        return None

    def birth(self) -> list[Message]:
        """What the firmware publishes right after connecting."""
        return []

    def on_connected(self) -> None:
        """Schedule anything that follows a connection (first telemetry, say)."""

    # -- connection ----------------------------------------------------------------------------

    def start(self, net: Network | None) -> None:
        self.net = net
        self.connect()

    def connect(self) -> None:
        if self.net is None:
            return
        self.link = self.net.connect(self.client_id(), self.will(), self.birth)
        self.online = True
        self.connected_at = self.sim.now
        for msg in self.birth():
            self.link.publish(msg)
        self.on_connected()

    def publish(self, topic: str, payload: str | bytes, retain: bool = False,
                qos: int = 1) -> None:
        if self.online and self.link is not None:
            data = payload.encode() if isinstance(payload, str) else payload
            self.link.publish(Message(topic, data, retain, qos))

    def stop(self) -> None:
        if self.link is not None and self.online:
            self.link.close()
        self.online = False

    # -- scenario actions ----------------------------------------------------------------------

    def do_wifi_drop(self, args: Mapping[str, Any]) -> None:
        """Off Wi-Fi for `for` seconds: the broker publishes the will; back with a birth."""
        if not self.online or self.link is None:
            return
        self.link.drop()
        self.online = False
        self.sim.after(float(args.get("for", 600)), self.connect)

    def do_flap(self, args: Mapping[str, Any]) -> None:
        """Drop and come back `times` times, `every` seconds apart, offline `for` each time."""
        times, every = int(args.get("times", 6)), float(args.get("every", 300))
        down = float(args.get("for", min(60.0, every / 2)))
        for i in range(times):
            self.sim.after(i * every, lambda: self.do_wifi_drop({"for": down}))

    def do_broker_lost(self, args: Mapping[str, Any]) -> None:
        """The broker is going down: the connection is lost without a DISCONNECT.

        Mosquitto 2 publishes the wills of its clients as it shuts down, and with
        persistence keeps them for persistent sessions (seen with 2.0.11), so a
        subscriber such as the gateway sees every device go offline and come back.
        """
        if self.link is not None and self.online:
            self.link.drop()
        self.online = False

    def do_broker_back(self, args: Mapping[str, Any]) -> None:
        """Reconnect after the firmware's own retry delay."""
        self.sim.after(float(args.get("delay", 1 + 9 * self.rng.random())), self.connect)
