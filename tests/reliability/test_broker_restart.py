"""Mosquitto restarted under load (SIGTERM, persistence on): the gateway reconnects by
itself and nothing the broker acknowledged is lost.

The broker writes its persistent sessions, including the messages queued for the
gateway, on SIGTERM; the gateway's session is persistent, so after reconnecting
it receives what it had not acknowledged. Plugs reconnect and resend what the
broker had not acknowledged to them. Duplicates are allowed and counted.
"""

from programs.plugs import Fleet, SimulatedPlug, wait_for_readings

from reliability.ledger import fleet_ledger

PLUGS = [
    SimulatedPlug("defib-socket", "tasmota"),
    SimulatedPlug("stage-lights", "tasmota", channels=2),
    SimulatedPlug("heater-plug", "shelly"),
    SimulatedPlug("distribution-board", "shelly", channels=4),
]
MESSAGES = 6000
RESTARTS = 2


def connects(gw) -> float:
    for line in gw.metrics_text().splitlines():
        if line.startswith("gateway_mqtt_connects_total"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_gateway_reconnects_after_broker_restart_and_loses_nothing(mosquitto, victoria,
                                                                   make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall"},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "reconnect_min": 1,
                 "reconnect_max": 2},
        "devices": [p.device_config() for p in PLUGS],
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url}],
    })
    gw.start()
    assert gw.wait_for(lambda s: connects(gw) == 1, 10), gw.metrics_text()
    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(MESSAGES, rate=400)
        for i in range(1, RESTARTS + 1):
            # Restart while messages flow: some are queued for the gateway, some in flight.
            assert gw.wait_for(lambda s, n=i * 1500: s["ingest"]["received"] >= n, 30), (
                gw.status())
            before = connects(gw)
            mosquitto.restart()
            back = gw.wait_for(lambda s, n=before: connects(gw) > n and s["mqtt"]["connected"],
                               30)
            assert back, f"gateway did not reconnect after broker restart {i}: {gw.status()}"
        fleet.wait(timeout=60)
        assert len(fleet.accepted()) == MESSAGES
        expected = fleet.expected({"gateway": "hall"})

    got = wait_for_readings(victoria, expected, timeout=60)
    fleet_ledger(f"broker restarted x{RESTARTS}", fleet, got, gw, "vm",
                 {"gateway": "hall"}).check()
    assert gw.status()["ingest"]["undecodable"] == {}
    assert gw.stop() == 0
