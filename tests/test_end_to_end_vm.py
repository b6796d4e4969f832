"""Readings of several Tasmota and Shelly plugs reach VictoriaMetrics, each exactly once.

Mosquitto, the gateway and VictoriaMetrics run as real processes; five simulated
plugs publish thousands of numbered messages at once, each over its own
connection. What VictoriaMetrics holds afterwards must be exactly the readings
those messages carry, with the device, channel, gateway and configured tags.
"""

from programs.plugs import Fleet, SimulatedPlug, difference, wait_for_readings

PLUGS = [
    SimulatedPlug("defib-socket", "tasmota", tags={"room": "entrance"}),
    SimulatedPlug("kitchen-urn", "tasmota", tags={"room": "kitchen"}),
    SimulatedPlug("stage-lights", "tasmota", channels=2, tags={"room": "stage"}),
    SimulatedPlug("heater-plug", "shelly", tags={"room": "main-hall"}),
    SimulatedPlug("distribution-board", "shelly", channels=4),
]
MESSAGES = 10_000  # about 56,000 readings


def test_every_reading_arrives_once_with_its_tags(mosquitto, victoria, make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall", "tags": {"site": "kilnwick"}},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [p.device_config() for p in PLUGS],
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url}],
    })
    gw.start()
    labels = {"gateway": "hall", "site": "kilnwick"}

    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(MESSAGES)
        fleet.wait(timeout=90)
        assert len(fleet.accepted()) == MESSAGES
        expected = fleet.expected(labels)
    assert sum(expected.values()) >= 10_000

    got = wait_for_readings(victoria, expected, timeout=90)
    assert got == expected, difference(expected, got)

    assert gw.wait_for(lambda s: s["ingest"]["received"] >= MESSAGES, 10)
    ingest = gw.status()["ingest"]
    assert ingest["received"] == MESSAGES, ingest
    assert ingest["decoded"] == MESSAGES, ingest
    assert ingest["undecodable"] == {}, ingest
    assert gw.sink("vm")["dropped"] == {}
    assert gw.stop() == 0
