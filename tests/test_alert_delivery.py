"""From a device's message to the committee's phone: a real gateway process, real
Mosquitto, Apprise posting to a local webhook and e-mailing a real SMTP server
(aiosmtpd), and `gateway alerts` saying who was told.

What a committee member sees: the alert on their channel once, the recovery
once, a channel that was down told as soon as it is back (two attempts
recorded, one message delivered), an e-mail when the first channel refuses,
and no token in anything the gateway prints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from programs.ports import free_port
from programs.webhook import Webhook


class Mailbox:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def publish(client, topic: str, payload: dict) -> None:
    client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)


def wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


TOKEN = "s3cr3t-T0KEN-4242"


def alerts(gw, *args: str):
    """`gateway alerts ...` as a user types it, on this gateway's config."""
    return gw.cli("alerts", *args[:1], "--config", str(gw.config_path), *args[1:])


def test_the_committee_is_told_once_and_told_again_on_recovery(mosquitto, make_gateway,
                                                                publisher, smtp):
    hook = Webhook()
    hook.start()
    box, smtp_port = smtp
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600,
                    "timezone": "Europe/London"},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "devices": [{"id": "urn", "profile": "tasmota", "topic": "urn",
                     "tags": {"room": "kitchen"}}],
        "people": [
            {"name": "ann", "channels": [hook.url(f"ann?token={TOKEN}")]},
            # carol's first channel refuses (HTTP 404): her e-mail takes the message
            {"name": "carol", "channels": [
                hook.url("carol-gone"),
                f"mailto://127.0.0.1:{smtp_port}?from=hall@example.org"
                "&to=carol@example.org&mode=insecure"]},
        ],
        "monitors": [{
            "name": "urn-left-on", "type": "threshold", "metric": "plug.power",
            "aggregation": "last", "window": "5m", "critical": 2000,
            "notify": ["everyone"],
            "message": "{{#is_alert}}The {{tags.room}} urn draws {{value}} W.{{/is_alert}}"
                       "{{#is_recovery}}The urn is off.{{/is_recovery}}"}],
        "alerting": {"retry_min": 0.5, "retry_max": 1},
    })
    hook.status["/carol-gone"] = 404
    gw.start()
    try:
        publish(publisher, "tele/urn/SENSOR", {"ENERGY": {"Power": 2400}})
        assert hook.wait("/ann", 1, 15) == ["The kitchen urn draws 2400 W."]
        assert wait(lambda: len(box.mails) == 1, 15), box.mails
        rcpt, content = box.mails[0]
        mail = message_from_bytes(content)
        assert rcpt == ["carol@example.org"] and "urn-left-on" in mail["Subject"]

        publish(publisher, "tele/urn/SENSOR", {"ENERGY": {"Power": 3}})
        assert hook.wait("/ann", 2, 15) == ["The kitchen urn draws 2400 W.", "The urn is off."]
        assert wait(lambda: len(box.mails) == 2, 15)
        time.sleep(1.5)  # nothing more comes
        assert len(hook.messages("/ann")) == 2 and len(box.mails) == 2

        listing = alerts(gw, "history", "--since", "1h")
        assert listing.returncode == 0, listing.stderr
        out = listing.stdout
        assert "urn-left-on on device:urn: closed (OK)" in out, out
        assert "OK -> ALERT" in out and "ALERT -> OK" in out and "ann: told" in out, out
        history = json.loads(alerts(gw, "history", "--json").stdout)
        told = [(t["transition"], t["person"], t["state"]) for t in history[0]["told"]]
        assert sorted(told) == [("ALERT -> OK", "ann", "sent"), ("ALERT -> OK", "carol", "sent"),
                                ("OK -> ALERT", "ann", "sent"), ("OK -> ALERT", "carol", "sent")]
    finally:
        gw.stop()
        hook.stop()
    assert TOKEN not in gw.log_text()


def test_a_channel_that_is_down_is_told_once_it_is_back(mosquitto, make_gateway, publisher):
    hook = Webhook()  # not started yet: nothing listens on its port
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "devices": [{"id": "defib-socket", "profile": "tasmota", "topic": "defib"}],
        "people": [{"name": "ann", "channels": [hook.url(f"ann/{TOKEN}")]}],
        "monitors": [{"name": "defib-power", "type": "state", "metric": "plug.power",
                      "below": 5, "duration": "0s", "safety_critical": True,
                      "message": "{{#is_alert}}Defibrillator socket has no power."
                                 "{{/is_alert}}"}],
        "alerting": {"retry_min": 1, "retry_max": 1},
    })
    gw.start()
    try:
        publish(publisher, "tele/defib/SENSOR", {"ENERGY": {"Power": 0}})
        # the gateway tries, fails, and says so where a user looks
        assert gw.wait_for_log("could not tell ann by json", 15), gw.log_text()
        listing = alerts(gw, "list")
        assert "defib-power on device:defib-socket: ALERT" in listing.stdout, listing.stdout
        assert "ann: not yet told" in listing.stdout, listing.stdout
        assert TOKEN not in listing.stdout + listing.stderr
        status = gw.cli("status", "--config", str(gw.config_path))
        assert status.returncode == 1, status.stdout  # running but degraded
        assert "alerts are not getting through: 1 notice(s)" in status.stdout, status.stdout
        hook.start()
        assert hook.wait("/ann/" + TOKEN, 1, 15) == ["Defibrillator socket has no power."]
        time.sleep(2.5)
        assert len(hook.messages("/ann/" + TOKEN)) == 1
        [alert] = json.loads(alerts(gw, "list", "--json").stdout)
        [notice] = alert["told"]
        assert notice["state"] == "sent" and notice["attempts"] >= 2, notice
        status = gw.cli("status", "--config", str(gw.config_path))
        assert "not getting through" not in status.stdout, status.stdout
        assert "#1 defib-power on device:defib-socket: ALERT since" in status.stdout
    finally:
        gw.stop()
        hook.stop()
    assert TOKEN not in gw.log_text()
