"""`gateway status`: sinks and backlog of a running gateway, or of its store when stopped."""

from __future__ import annotations

import json
import re

from paho.mqtt import publish
from programs.ports import LOOPBACK, free_port


def test_status_of_a_running_then_stopped_gateway(mosquitto, victoria, make_gateway):
    down = f"http://{LOOPBACK}:{free_port()}"  # a destination that is not there
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 1},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "defib-socket", "profile": "tasmota", "topic": "defib_socket"}],
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url},
                  {"name": "offsite", "type": "influx", "url": down,
                   "backoff_min": 0.2, "backoff_max": 1}],
    })
    gw.start()
    for power in (38, 39):
        publish.single("tele/defib_socket/SENSOR", f'{{"ENERGY":{{"Power":{power}}}}}', qos=1,
                       hostname=mosquitto.host, port=mosquitto.port)
    assert gw.wait_for(lambda s: s["ingest"]["stored"] >= 2
                       and s["sinks"][0]["delivered"] >= 2
                       and s["sinks"][1]["backlog_rows"] >= 2, 20), gw.status()

    shown = gw.cli("status", "--config", str(gw.config_path))
    assert shown.returncode == 1, shown.stderr  # running, but a sink cannot deliver
    text = shown.stdout
    assert text.startswith("gateway hall: running, DEGRADED\n  ! sink offsite is retrying: "
                           "cannot reach"), text
    assert f"mqtt {mosquitto.host}:{mosquitto.port}: connected" in text
    assert re.search(r"ingest: received 2 messages, decoded 2", text), text
    vm = next(line for line in text.splitlines() if line.strip().startswith("vm "))
    assert re.search(r"vm \[(ok|idle)\] backlog \d+ rows", vm), vm
    assert "delivered" in vm
    offsite = text.split("\n    offsite", 1)[1]
    assert re.match(r" \[retrying\] backlog (\d+) rows, oldest \d+s", offsite), offsite
    assert int(re.match(r" \[retrying\] backlog (\d+)", offsite).group(1)) >= 2
    assert "last error: cannot reach" in offsite and down in offsite

    as_json = json.loads(gw.cli("status", "--json", "--config", str(gw.config_path)).stdout)
    assert as_json["running"] is True
    assert [k["name"] for k in as_json["sinks"]] == ["vm", "offsite"]

    assert gw.stop() == 0
    stopped = gw.cli("status", "--config", str(gw.config_path))
    assert stopped.returncode == 3, stopped.stderr
    text = stopped.stdout
    assert text.startswith("gateway hall: not running")
    assert "figures read from the store" in text
    assert str(gw.data_dir) in text
    backlog = re.search(r"offsite backlog (\d+) rows", text)
    assert backlog and int(backlog.group(1)) >= 2, text
    assert re.search(r"vm backlog \d+ rows", text)
    offline = json.loads(gw.cli("status", "--json", "--config", str(gw.config_path)).stdout)
    assert offline["running"] is False
    assert {k["name"]: k["backlog_rows"] for k in offline["sinks"]}["offsite"] >= 2


def test_status_before_the_gateway_ever_ran(tmp_path):
    from programs.gateway import GatewayProcess

    gw = GatewayProcess(tmp_path, {"gateway": {"name": "hall"},
                                   "mqtt": {"port": free_port()}})
    shown = gw.cli("status", "--config", str(gw.config_path))
    assert shown.returncode == 3, shown.stderr
    assert shown.stdout.startswith("gateway hall: not running")
    assert "no store at" in shown.stdout
