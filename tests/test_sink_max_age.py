"""A sink's `max_age`: readings older than that when their turn comes are not sent to it
(a live view wants now, not last week), are counted as dropped `max_age`, and leave
the store for that sink; another sink still gets everything."""

import json
import time
from pathlib import Path


def lines(path: Path) -> list[dict]:
    return [json.loads(t) for t in path.read_text().splitlines()] if path.exists() else []


def powers(path: Path) -> list[float]:
    return [d["value"] for d in lines(path) if d["metric"] == "plug.power"]


def test_readings_too_old_for_a_sink_are_dropped_there_and_counted(mosquitto, publisher,
                                                                    make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "urn", "profile": "tasmota", "topic": "urn"}],
        "sinks": [{"name": "live", "type": "file", "path": "live/readings.jsonl",
                   "max_age": "2s", "backoff_min": 0.2, "backoff_max": 0.5},
                  {"name": "archive", "type": "file", "path": "archive.jsonl"}],
    })
    live = gw.data_dir / "live" / "readings.jsonl"  # a relative path is inside data_dir
    live.mkdir(parents=True)  # a folder in the way: the live sink cannot write for now
    gw.start()
    for n in range(1, 6):
        publisher.publish("tele/urn/SENSOR", json.dumps({"ENERGY": {"Power": n}}),
                          qos=1).wait_for_publish(5)
    assert gw.wait_for(lambda s: gw.sink("live")["state"] == "retrying", 10), gw.sink("live")
    time.sleep(2.5)  # the five readings are now older than the live sink's max_age
    live.rmdir()
    publisher.publish("tele/urn/SENSOR", json.dumps({"ENERGY": {"Power": 6}}),
                      qos=1).wait_for_publish(5)
    # (Reading 6 is committed within store.commit_interval: wait for it, not only for an
    # empty backlog, which a moment before that commit is empty too.)
    assert gw.wait_for(lambda s: powers(live) == [6.0]
                       and all(k["backlog_rows"] == 0 for k in s["sinks"]), 15), \
        (powers(live), gw.status()["sinks"])
    assert powers(gw.data_dir / "archive.jsonl") == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert gw.sink("live")["dropped"]["max_age"] >= 5  # five powers, plus any self-metrics
    assert "max_age" not in gw.sink("archive")["dropped"]
    assert gw.stop() == 0
