"""The status LED on the box says how the gateway is: fast blink while it is degraded
(here: its GPS's port is missing), steady once all is well, slow blink while readings
wait to be sent (the sink's destination is down), off when the gateway stops.

gpiozero's mock pins (the gateway runs in this process so the test can watch the
pin), Mosquitto, VictoriaMetrics (stopped halfway), a pseudo-terminal appearing as
the GPS is plugged in.
"""

from __future__ import annotations

import time

from reliability.inprocess import GatewayThread, TestClock

from firmware_sim.car.pty import PseudoTerminal

LED = 23


def pattern(pin, seconds: float = 2.6) -> str:
    """steady on, steady off, fast or slow, from how often the pin changes."""
    changes, last = 0, pin.state
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pin.state != last:
            changes, last = changes + 1, pin.state
        time.sleep(0.02)
    if changes == 0:
        return "on" if last else "off"
    return "fast" if changes >= 8 else "slow"


def wait_for_pattern(pin, wanted: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = pattern(pin)
        if seen == wanted:
            break
    return seen


def test_the_led_shows_degraded_well_and_waiting(mosquitto, victoria, publisher, tmp_path,
                                                 pins):
    link = tmp_path / "gps"
    config = {
        "gateway": {"name": "van-1", "self_metrics_interval": 3600, "status_led_pin": LED},
        "store": {"commit_interval": 0.05},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "sources": [{"name": "gps", "type": "serial", "port": str(link), "retry_min": 0.2,
                     "retry_max": 0.5}],
        "devices": [{"id": "van-gps", "profile": "nmea", "source": "gps"},
                    {"id": "plug1", "profile": "tasmota", "topic": "plug1"}],
        "sinks": [{"name": "office", "type": "influx", "url": victoria.url,
                   "backoff_min": 0.2, "backoff_max": 0.5, "timeout": 1}],
    }
    gw = GatewayThread(config, tmp_path, TestClock(time.time()))
    gw.start()
    led = pins.pin(LED)
    port = None
    try:
        assert wait_for_pattern(led, "fast") == "fast"  # the GPS's port is missing
        port = PseudoTerminal(str(link))
        assert wait_for_pattern(led, "on") == "on"
        victoria.close()  # the office's server goes down: the next reading has to wait
        publisher.publish("tele/plug1/SENSOR", '{"ENERGY":{"Power":40}}',
                          qos=1).wait_for_publish(5)
        assert wait_for_pattern(led, "slow") == "slow"
    finally:
        gw.stop()
        if port is not None:
            port.close()
    assert led.state is False
