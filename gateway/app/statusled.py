"""A status LED on the Pi's pins: how the gateway is, for whoever looks at the box.

- lit steady: all is well, nothing waiting to be sent;
- slow blink (1 s on, 1 s off): readings wait to be sent (a sink retrying, held or
  waiting for its forward_when, with a backlog);
- fast blink (0.15 s): the gateway is degraded (broker, store, a source, a check) or
  an alert is open;
- off: the gateway is not running.

gpiozero picks the pin library (lgpio on a Pi 5); mock pins in tests.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("gateway.statusled")

PATTERNS = {"slow": (1.0, 1.0), "fast": (0.15, 0.15)}


def led_state(health: list[str], sinks: list[dict[str, Any]], open_alerts: int) -> str:
    """What the LED shows for these figures: on, slow or fast."""
    if health or open_alerts:
        return "fast"
    waiting = any(s.get("state") in ("retrying", "held", "waiting")
                  and (s.get("backlog_rows") or 0) > 0 for s in sinks)
    return "slow" if waiting else "on"


class StatusLed:
    def __init__(self, pin: int) -> None:
        self.pin = pin
        self.state = ""
        self.led: Any = None
        try:
            from gpiozero import LED

            self.led = LED(pin)
        except Exception as exc:  # noqa: BLE001 - no GPIO here: the gateway goes on
            log.error("status LED on pin %s not available: %s", pin, exc)

    def show(self, state: str) -> None:
        if state == self.state or self.led is None:
            return
        self.state = state
        if state == "on":
            self.led.on()
        elif state in PATTERNS:
            on, off = PATTERNS[state]
            self.led.blink(on_time=on, off_time=off)
        else:
            self.led.off()

    def close(self) -> None:
        if self.led is not None:
            self.led.off()
            self.led.close()
