"""The Pi's own pins' settings (`sources[]` entry with `type: gpio`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.schema import SourceCommon, name_problems
from gateway.config.validate import Duration, doc

PIN_FACTORIES = ("", "lgpio", "rpigpio", "pigpio", "native", "mock")


@dataclass(frozen=True)
class GpioInput:
    """One thing wired to the Pi: a motion sensor, a door contact, a button, a 1-Wire
    thermometer."""

    name: str = field(metadata=doc("its name: a device with profile gpio names it as `input`"))
    kind: Literal["motion", "contact", "button", "ds18b20"] = field(metadata=doc(
        "motion (a PIR's output: sensor.occupancy 1 while it sees movement and for `hold` "
        "after), contact (a reed switch to ground: sensor.contact 1 closed, 0 open), "
        "button (to ground: sensor.button_presses, one a press), ds18b20 (1-Wire: "
        "climate.temperature from sysfs)"))
    pin: int | None = field(default=None, metadata=doc(
        "BCM GPIO number (17 is header pin 11); not for ds18b20"))
    hold: Duration = field(default=Duration(300.0), metadata=doc(
        "motion: how long the room counts as occupied after the last movement"))
    bounce: Duration = field(default=Duration(0.05), metadata=doc(
        "contact and button: changes closer together than this are contact bounce"))
    path: str = field(default="", metadata=doc(
        "ds18b20: the sensor's sysfs folder, /sys/bus/w1/devices/28-xxxxxxxxxxxx (with "
        "the w1-gpio overlay in config.txt)"))
    every: Duration = field(default=Duration(60.0), metadata=doc(
        "ds18b20: how often to read it"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from name_problems("name", self.name, "input name")
        if self.kind == "ds18b20":
            if not self.path:
                yield "path", "a ds18b20 needs its sysfs folder, /sys/bus/w1/devices/28-..."
            if self.every <= 0:
                yield "every", "must be more than 0"
        elif self.pin is None or not 0 <= self.pin <= 53:
            yield "pin", f"a {self.kind} needs its BCM GPIO number, 0 to 53 (e.g. 17)"


@dataclass(frozen=True)
class GpioSourceConfig(SourceCommon):
    type: Literal["gpio"] = "gpio"
    inputs: tuple[GpioInput, ...] = field(default=(), metadata=doc("what is wired to it"))
    pin_factory: str = field(default="", metadata=doc(
        "gpiozero's pin library: empty for its default (lgpio on a Pi 5, or "
        "GPIOZERO_PIN_FACTORY), or lgpio, rpigpio, pigpio, native, mock"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from SourceCommon.check(self)
        if self.pin_factory not in PIN_FACTORIES:
            yield "pin_factory", f"one of {', '.join(p for p in PIN_FACTORIES if p)} (or empty)"
        seen: dict[object, int] = {}
        for i, item in enumerate(self.inputs):
            if not isinstance(item, GpioInput):
                continue
            for key in (("name", item.name), ("pin", item.pin)):
                if key[1] is None:
                    continue
                if key in seen:
                    yield (f"inputs[{i}].{key[0]}",
                           f"{key[1]!r} is used by inputs[{seen[key]}] already")
                seen.setdefault(key, i)
        if not self.inputs:
            yield "inputs", ("name at least one input, e.g. {name: hall-motion, kind: motion, "
                             "pin: 17}")
