"""A gateway killed after a channel took a notification but before alerts.db says so
sends it again when it starts: twice, never not at all.

A real gateway process (SIGKILL), real Mosquitto, Apprise posting to a local
webhook that holds its reply, so the kill lands between the two.
"""

from __future__ import annotations

import json
import sqlite3
import time

from programs.webhook import Webhook


def test_sigkill_between_send_and_record_sends_again(mosquitto, make_gateway, publisher):
    hook = Webhook()
    hook.hold["/ann"] = 30.0  # takes the message, answers late
    hook.start()
    config = {
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "devices": [{"id": "defib-socket", "profile": "tasmota", "topic": "defib"}],
        "people": [{"name": "ann", "channels": [hook.url("ann")]}],
        "monitors": [{"name": "defib-power", "type": "state", "metric": "plug.power",
                      "below": 5, "duration": "0s",
                      "message": "{{#is_alert}}Defibrillator socket has no power.{{/is_alert}}"}],
        "alerting": {"retry_min": 0.5, "retry_max": 1},
    }
    gw = make_gateway(config)
    gw.start()
    try:
        publisher.publish("tele/defib/SENSOR", json.dumps({"ENERGY": {"Power": 0}}),
                          qos=1).wait_for_publish(5)
        assert hook.wait("/ann", 1, 15) == ["Defibrillator socket has no power."]
        gw.kill()  # the channel has it; the gateway never heard back
        db = gw.data_dir / "alerts.db"
        with sqlite3.connect(db) as c:
            states = [s for (s,) in c.execute("SELECT state FROM notifications")]
        assert states == ["pending"], states

        hook.hold["/ann"] = 0.0
        gw.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with sqlite3.connect(db) as c:
                states = [s for (s,) in c.execute("SELECT state FROM notifications")]
            if states == ["sent"]:
                break
            time.sleep(0.2)
        assert states == ["sent"], states
        # told twice (the price of never none), and no new alert for the same trouble
        assert hook.messages("/ann") == ["Defibrillator socket has no power."] * 2
        with sqlite3.connect(db) as c:
            assert c.execute("SELECT count(*) FROM alerts").fetchone() == (1,)
    finally:
        gw.stop()
        hook.stop()
