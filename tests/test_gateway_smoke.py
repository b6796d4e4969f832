"""The gateway process starts, reads a device over Mosquitto and writes to VictoriaMetrics."""

import paho.mqtt.publish as publish


def test_reading_from_a_tasmota_plug_reaches_victoriametrics(mosquitto, victoria, make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall", "tags": {"site": "kilnwick"}},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "defib-socket", "profile": "tasmota", "topic": "defib_socket",
                     "priority": "critical", "tags": {"room": "entrance"}}],
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url}],
    })
    gw.start()
    publish.single("tele/defib_socket/SENSOR", '{"ENERGY":{"Power":38,"Voltage":238}}',
                   qos=1, hostname=mosquitto.host, port=mosquitto.port)
    assert gw.wait_for(lambda s: gw.sink("vm")["delivered"] >= 2, 15)
    (series,) = victoria.export('{__name__="plug_power"}')
    assert series["metric"] == {"__name__": "plug_power", "device": "defib-socket",
                                "gateway": "hall", "site": "kilnwick", "room": "entrance"}
    assert series["values"] == [38]
    assert gw.stop() == 0
