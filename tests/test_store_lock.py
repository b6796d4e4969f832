"""Two gateways on one store would both acknowledge and move each other's cursors:
the second one refuses to start, and says which process holds the store."""

import json


def test_a_second_gateway_on_the_same_store_refuses_to_start(mosquitto, make_gateway):
    config = {"gateway": {"name": "hall"}, "mqtt": {"host": mosquitto.host,
                                                    "port": mosquitto.port}}
    first = make_gateway(json.loads(json.dumps(config)))
    first.start()
    second_config = json.loads(json.dumps(config))
    second_config["gateway"]["data_dir"] = str(first.data_dir)
    second = make_gateway(second_config)
    second.start(wait_connected=False)
    assert second.proc is not None
    assert second.proc.wait(30) == 1
    assert f"in use by pid {first.proc.pid}" in second.log_text(), second.log_text()
    assert first.running and first.status()["mqtt"]["connected"]
    assert first.stop() == 0
