"""The Datadog sink with `api: v1` delivers to a real v1 intake: VictoriaMetrics.

VictoriaMetrics accepts Datadog's `/api/v1/series` under `/datadog`, so the v1
wire format (points as [ts, value] pairs, `host`, `type` by name, deflate) is
checked against a real program rather than a stand-in.
"""

from __future__ import annotations

import time

from paho.mqtt import publish


def test_v1_series_reach_victoriametrics(mosquitto, victoria, make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall", "tags": {"site": "kilnwick"}, "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [
            {"id": "defib-socket", "profile": "tasmota", "topic": "defib_socket",
             "tags": {"room": "entrance"}},
            {"id": "door", "profile": "generic-json", "topic": "hall/door",
             "fields": {"opens": {"metric": "door.opens", "type": "count"}}},
        ],
        "sinks": [{"name": "dd", "type": "datadog", "api": "v1", "api_key": "unused-by-vm",
                   "url": victoria.url + "/datadog", "backoff_min": 0.2, "backoff_max": 1}],
    })
    gw.start()
    publish.multiple([
        {"topic": "tele/defib_socket/SENSOR", "payload": '{"ENERGY":{"Power":38,"Voltage":238}}',
         "qos": 1},
        {"topic": "hall/door", "payload": '{"opens": 3}', "qos": 1},
    ], hostname=mosquitto.host, port=mosquitto.port)
    assert gw.wait_for(lambda s: s["sinks"][0]["delivered"] >= 3
                       and s["sinks"][0]["last_error"] == "", 20), gw.status()

    def exported(name: str) -> list[dict]:
        deadline = time.monotonic() + 10
        while True:
            found = victoria.export(f'{{__name__="{name}"}}')
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    (power,) = exported("plug.power")
    assert power["metric"] == {"__name__": "plug.power", "device": "defib-socket",
                               "gateway": "hall", "host": "hall", "room": "entrance",
                               "site": "kilnwick"}
    assert power["values"] == [38]
    assert abs(power["timestamps"][0] / 1000 - time.time()) < 60
    (voltage,) = exported("plug.voltage")
    assert voltage["values"] == [238]
    (opens,) = exported("door.opens")
    assert opens["values"] == [3]
    assert opens["metric"]["device"] == "door"
    sink = gw.sink("dd")
    assert sink["state"] in ("ok", "idle") and sink["dropped"] == {}
    assert gw.stop() == 0
