"""`gateway replay` publishes every configured device's example payloads, and the
running gateway decodes all of them: each profile works through a real broker."""

import re


def test_replayed_examples_of_every_profile_are_received_and_decoded(mosquitto, victoria,
                                                                     make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall"},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [
            {"id": "defib-socket", "profile": "tasmota", "topic": "defib_socket"},
            {"id": "stage-plug", "profile": "shelly", "prefix": "shellyplusplugs-stage"},
            {"id": "stage-bulb", "profile": "zigbee2mqtt", "friendly_name": "stage_bulb"},
            {"id": "heating", "profile": "esphome", "node": "hall-heating"},
        ],
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url}],
    })
    gw.start()
    refused = gw.cli("replay", "--config", str(gw.config_path), "--rounds", "1")
    assert refused.returncode == 1
    assert "sends to vm (influx): the example values would be stored" in refused.stderr
    done = gw.cli("replay", "--config", str(gw.config_path), "--rounds", "1", "--force")
    assert done.returncode == 0, done.stderr
    sent = int(re.search(r"published (\d+) example", done.stdout).group(1))
    assert sent > 30
    assert gw.wait_for(lambda s: s["ingest"]["received"] >= sent, 20)
    ingest = gw.status()["ingest"]
    assert ingest["received"] == sent
    assert ingest["undecodable"] == {}
    assert ingest["decoded"] == sent
    assert gw.wait_for(lambda s: gw.sink("vm")["delivered"] >= ingest["stored"], 20)
    devices = {series["metric"]["device"] for series in victoria.export('{gateway="hall"}')}
    assert {"defib-socket", "stage-plug", "stage-bulb", "heating"} <= devices
