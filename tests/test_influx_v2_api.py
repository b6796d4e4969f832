"""The influx sink's `api: v2` (POST /api/v2/write with org, bucket and a token) delivers.

VictoriaMetrics accepts InfluxDB 2.x writes on /api/v2/write (it ignores org,
bucket and token), so the v2 request path is exercised against a real server.
"""


def test_api_v2_writes_arrive_in_victoriametrics(mosquitto, victoria, make_gateway, publisher):
    gw = make_gateway({
        "gateway": {"name": "hall"},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "urn", "profile": "tasmota", "topic": "urn"}],
        "sinks": [{"name": "influx2", "type": "influx", "url": victoria.url, "api": "v2",
                   "org": "village", "bucket": "hall", "token": "${INFLUX_TOKEN}"}],
    }, env={"INFLUX_TOKEN": "tok-3141"})
    gw.start()
    publisher.publish("tele/urn/SENSOR", '{"ENERGY":{"Power":1800,"Current":7.8}}',
                      qos=1).wait_for_publish(5)
    assert gw.wait_for(lambda s: gw.sink("influx2")["delivered"] >= 2, 15)
    (power,) = victoria.export('{__name__="plug_power"}')
    assert power["metric"]["device"] == "urn" and power["values"] == [1800]
    (current,) = victoria.export('{__name__="plug_current"}')
    assert current["values"] == [7.8]
    assert "tok-3141" not in gw.log_text()
