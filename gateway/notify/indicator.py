"""The hall's own fallback when no channel reaches anyone: a lamp and a buzzer on the
Pi's pins (gpiozero), for whoever walks in.

- the lamp (`alerting.lamp_pin`) is lit while any alert is open, and blinks while a
  notice for one could not be delivered;
- the buzzer (`alerting.buzzer_pin`) beeps while a safety-critical alert is open and
  nobody has acknowledged it.

gpiozero picks the pin library (lgpio on a Pi 5); `GPIOZERO_PIN_FACTORY=mock` runs it
with no hardware, as the tests do.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("gateway.notify")


class Indicator:
    def __init__(self, lamp_pin: int | None, buzzer_pin: int | None) -> None:
        self.lamp: Any = None
        self.buzzer: Any = None
        self.state = ("off", "off")
        try:
            from gpiozero import LED, Buzzer

            self.lamp = LED(lamp_pin) if lamp_pin is not None else None
            self.buzzer = Buzzer(buzzer_pin) if buzzer_pin is not None else None
        except Exception as exc:  # noqa: BLE001 - no GPIO here: alerts go on without it
            log.error("alert lamp/buzzer on pins %s/%s not available: %s (alerts still go "
                      "to people and the broker)", lamp_pin, buzzer_pin, exc)

    def show(self, open_alerts: int, undelivered: int, critical_unacked: int) -> None:
        lamp = "off" if not open_alerts else ("blink" if undelivered else "on")
        buzzer = "beep" if critical_unacked else "off"
        if (lamp, buzzer) == self.state:
            return
        self.state = (lamp, buzzer)
        if self.lamp is not None:
            {"off": self.lamp.off, "on": self.lamp.on,
             "blink": lambda: self.lamp.blink(on_time=0.5, off_time=0.5)}[lamp]()
        if self.buzzer is not None:
            if buzzer == "beep":
                self.buzzer.beep(on_time=0.2, off_time=2.0)
            else:
                self.buzzer.off()

    def close(self) -> None:
        for part in (self.lamp, self.buzzer):
            if part is not None:
                part.close()
