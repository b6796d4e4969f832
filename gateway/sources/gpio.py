"""The Pi's own pins as a source: a motion sensor, door contacts, a button, a 1-Wire
thermometer, read through gpiozero (which picks lgpio on a Pi 5; mock pins in tests).

Each input's messages are `<source>/<input>/<kind>`, payload the value as text, for
the gpio profile:
- motion: `1` when the PIR first sees movement, `0` once it has seen none for
  `hold` (a room stays occupied through people sitting still);
- contact: `1` closed, `0` open, on every change and once at start;
- button: `1` a press (a count);
- ds18b20 (temperature): every `every`, from `<path>/temperature` (millidegrees,
  newer kernels) or `<path>/w1_slave` (its CRC checked); a failed CRC or the
  sensor's power-on value 85 °C is not a reading, and is counted
  (`gateway.gpio_dropped`).

A pin that cannot be had (no GPIO on this machine, busy, a wrong number) is named in
status and /health; the other inputs and the gateway carry on. A pin change has no
acknowledgement: the reading is the gateway's once handed on.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from gateway.clock import Clock
from gateway.health.stats import Stats
from gateway.model import RawMessage
from gateway.sources.base import Source, SourceContext, Submit
from gateway.sources.gpio_config import GpioInput, GpioSourceConfig

log = logging.getLogger("gateway.gpio")

#: what a DS18B20 says before its first conversion: not a temperature
POWER_ON_VALUE = 85.0


class GpioSource(Source):
    kind = "gpio"

    @classmethod
    def build(cls, config: Any, context: SourceContext) -> GpioSource:
        return cls(config, context.clock, context.stats, context.submit)

    def __init__(self, config: GpioSourceConfig, clock: Clock, stats: Stats,
                 submit: Submit) -> None:
        super().__init__(config.name)
        self.config = config
        self.clock = clock
        self.stats = stats
        self.submit = submit
        self.devices: dict[str, Any] = {}  # gpiozero devices by input name
        self.problems: dict[str, str] = {}  # why an input is not read, by input name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._occupied: dict[str, bool] = {}
        self._moved: dict[str, float] = {}  # last movement, monotonic, by motion input

    # -- the Source contract ----------------------------------------------------------------

    def start(self) -> None:
        factory = self._factory()
        for item in self.config.inputs:
            if item.kind == "ds18b20":
                continue
            try:
                self.devices[item.name] = self._device(item, factory)
            except Exception as exc:  # noqa: BLE001 - gpiozero raises many kinds: say which
                why = f"pin {item.pin}: {type(exc).__name__}: {exc}"
                self.problems[item.name] = why
                log.error("gpio source %s: input %s not read: %s", self.name, item.name, why)
        self._thread = threading.Thread(target=self._guarded, name=f"gpio-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for device in self.devices.values():
            device.close()

    def ready(self) -> bool:
        return not self.problems

    def problem(self) -> str:
        return "; ".join(f"gpio source {self.name}: input {name}: {why}"
                         for name, why in sorted(self.problems.items()))

    def status(self) -> dict[str, Any]:
        return {"type": "gpio", "inputs": len(self.config.inputs),
                "problems": dict(self.problems)}

    # -- pins ---------------------------------------------------------------------------------

    def _factory(self) -> Any:
        name = self.config.pin_factory
        if not name:
            return None  # gpiozero's default (and GPIOZERO_PIN_FACTORY)
        return entry_points(group="gpiozero_pin_factories")[name].load()()

    def _device(self, item: GpioInput, factory: Any) -> Any:
        from gpiozero import Button, DigitalInputDevice

        if item.kind == "motion":
            # A PIR drives its output high while it sees movement.
            device = DigitalInputDevice(item.pin, pull_up=False, pin_factory=factory)
            device.when_activated = lambda: self._movement(item)
            if device.is_active:
                self._movement(item)
            return device
        if item.kind == "contact":
            device = DigitalInputDevice(item.pin, pull_up=True, bounce_time=item.bounce or None,
                                        pin_factory=factory)
            device.when_activated = lambda: self._send(item, "contact", "1")
            device.when_deactivated = lambda: self._send(item, "contact", "0")
            self._send(item, "contact", "1" if device.is_active else "0")
            return device
        button = Button(item.pin, bounce_time=item.bounce or None, pin_factory=factory)
        button.when_pressed = lambda: self._send(item, "button", "1")
        return button

    def _movement(self, item: GpioInput) -> None:
        with self._lock:
            self._moved[item.name] = self.clock.monotonic()
            first = not self._occupied.get(item.name)
            self._occupied[item.name] = True
        if first:
            self._send(item, "motion", "1")

    def _send(self, item: GpioInput, kind: str, value: str) -> None:
        self.submit(RawMessage(f"{self.name}/{item.name}/{kind}", value.encode(),
                               self.clock.now(), kind="gpio"), None)

    # -- the chores: motion's hold, thermometers ---------------------------------------------

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # a bug: the supervisor sees it and stops the gateway
            self.failure = exc
            log.exception("gpio source %s died", self.name)

    def _run(self) -> None:
        due = {item.name: 0.0 for item in self.config.inputs if item.kind == "ds18b20"}
        while not self._stop.is_set():
            now = self.clock.monotonic()
            for item in self.config.inputs:
                if item.kind == "motion":
                    self._still(item, now)
                elif item.kind == "ds18b20" and now >= due[item.name]:
                    due[item.name] = now + float(item.every)
                    self._thermometer(item)
            self._stop.wait(0.5)

    def _still(self, item: GpioInput, now: float) -> None:
        device = self.devices.get(item.name)
        with self._lock:
            if not self._occupied.get(item.name):
                return
            if device is not None and device.is_active:
                self._moved[item.name] = now  # still moving: the hold counts from now
                return
            if now - self._moved.get(item.name, now) < float(item.hold):
                return
            self._occupied[item.name] = False
        self._send(item, "motion", "0")

    def _thermometer(self, item: GpioInput) -> None:
        folder = Path(item.path)
        try:
            if (folder / "temperature").exists():
                celsius = int((folder / "temperature").read_text().strip()) / 1000
            else:
                lines = (folder / "w1_slave").read_text().splitlines()
                if len(lines) < 2 or not lines[0].strip().endswith("YES"):
                    self._dropped(item, "crc")
                    return
                celsius = int(lines[1].rsplit("t=", 1)[1]) / 1000
        except (OSError, ValueError, IndexError) as exc:
            why = f"cannot read {folder}: {getattr(exc, 'strerror', None) or exc}"
            if self.problems.get(item.name) != why:
                log.warning("gpio source %s: input %s: %s", self.name, item.name, why)
            self.problems[item.name] = why
            return
        self.problems.pop(item.name, None)
        if celsius == POWER_ON_VALUE:
            self._dropped(item, "power_on_value")
            return
        self._send(item, "temperature", f"{celsius:g}")

    def _dropped(self, item: GpioInput, reason: str) -> None:
        self.stats.inc("gateway.gpio_dropped", source=self.name, input=item.name,
                       reason=reason)
