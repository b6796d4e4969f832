"""With no channel reaching anyone, the hall itself shows it: the lamp is lit while an
alert is open and blinks while a notice could not be delivered; the buzzer beeps while
the defibrillator's alert is open and unacknowledged. gpiozero's mock pins."""

from __future__ import annotations

import json

from gateway.clock import ManualClock
from gateway.config.load import parse_config
from gateway.health.stats import Stats
from gateway.model import Reading
from gateway.notify.alerting import Alerting

T0 = 1_790_000_000.0
LAMP, BUZZER = 17, 27


def power(value: float, ts: float) -> Reading:
    return Reading("plug.power", value, ts, "gauge", "W", {"device": "defib-socket"})


def test_lamp_and_buzzer_follow_the_alert(tmp_path, pins):
    config = parse_config(json.dumps({
        "gateway": {"name": "hall"},
        "devices": [{"id": "defib-socket", "profile": "tasmota", "topic": "defib"}],
        # nothing listens on port 9: every delivery fails at once
        "people": [{"name": "ann", "channels": ["json://127.0.0.1:9/ann"]}],
        "monitors": [{"name": "defib-power", "type": "state", "metric": "plug.power",
                      "devices": ["defib-socket"], "below": 1, "duration": "0s",
                      "safety_critical": True}],
        "alerting": {"board": False, "lamp_pin": LAMP, "buzzer_pin": BUZZER}}),
        str(tmp_path / "gateway.yaml"))
    clock = ManualClock(T0)
    a = Alerting(config, tmp_path / "data", clock, Stats(), {})
    a.show()
    lamp, buzzer = pins.pin(LAMP), pins.pin(BUZZER)
    assert (lamp.state, buzzer.state) == (False, False)

    a.engine.take([power(0, T0)])
    assert a.indicator is not None and a.indicator.state == ("on", "beep")
    assert lamp.state is True
    assert a.sender.send_due() == 0  # the channel cannot be reached
    assert a.indicator.state == ("blink", "beep")

    [alert] = a.journal.alerts()
    a.acknowledge(alert.id, "ann", "cli")
    assert a.indicator.state == ("blink", "off")
    assert buzzer.state is False

    clock.advance(1)
    a.engine.take([power(30, clock.now())])
    assert a.indicator.state[0] == "off" and lamp.state is False
    a.stop()
