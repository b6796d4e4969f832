"""The simulator's "heating left on" through real Mosquitto and the gateway: after the
parish council someone holds the thermostat at 21 °C and goes home; the on-duty member
is told once, nobody else, and told again when the caretaker releases it at 08:00.

gateway-sim's hall (its ESPHome heating controller) at 3,600 times real speed, so a
simulated hour is a real second; the monitor's duration is set in those seconds.
Apprise posts to a local webhook.
"""

from __future__ import annotations

import threading
import time

from programs.webhook import Webhook

from firmware_sim.network import BrokerNetwork
from firmware_sim.runner import ScenarioRun
from firmware_sim.scenario import load_scenario

SPEED = 3600.0


def test_heating_left_on_overnight_tells_the_on_duty_member_once(mosquitto, make_gateway):
    hook = Webhook()
    hook.start()
    network = BrokerNetwork(mosquitto.host, mosquitto.port)
    run = ScenarioRun(load_scenario("heating-left-on"), network, seed=1, speed=SPEED)
    gw = make_gateway({
        "gateway": {"name": "hall", "device_time": {"enabled": False},
                    "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "devices": run.gateway_devices(),
        "people": [
            {"name": "margaret", "channels": [hook.url("margaret")]},
            # away for the whole test: not on duty
            {"name": "dev", "channels": [hook.url("dev")],
             "away": [{"start": "2000-01-01", "end": "2100-01-01"}]}],
        "monitors": [{
            # The programme's comfort lasts the booking (2.5 simulated hours); a setpoint
            # above setback for three simulated hours is someone's hold.
            "name": "heating-left-on", "type": "state", "metric": "climate.setpoint",
            "devices": ["heating"], "above": 15, "duration": 3 * 3600 / SPEED,
            "notify": ["on_duty"],
            "message": "{{#is_alert}}Heating held at {{value}} °C with nobody in."
                       "{{/is_alert}}{{#is_recovery}}Heating back to setback."
                       "{{/is_recovery}}"}],
        "sinks": [],
    })
    gw.start()
    try:
        sim = threading.Thread(target=run.run, name="simulator", daemon=True)
        sim.start()
        sim.join(60)  # the scenario's 17 simulated hours
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(hook.messages("/margaret")) < 2:
            time.sleep(0.2)
        time.sleep(1.0)  # anything late would show now
        assert hook.messages("/margaret") == ["Heating held at 21 °C with nobody in.",
                                             "Heating back to setback."]
        assert hook.messages("/dev") == []
    finally:
        run.stop()
        network.close()
        gw.stop()
        hook.stop()
