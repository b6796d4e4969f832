"""No part of the gateway dies unseen, and none takes an accepted reading with it.

Each kind of component is made to die of a bug (an exception nothing below
expects) inside the real gateway, on Mosquitto and a file sink:

- a forwarder: restarted in place; everything reaches the file; the death is
  in the log with its traceback, in status and in self-metrics;
- the ingest thread: the gateway stops with exit status 1 (systemd starts it
  afresh); started again on the same store, the broker gives back what was not
  acknowledged and nothing is lost;
- the MQTT source's network thread: the same.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from programs.ports import wait_until
from reliability.inprocess import GatewayThread, TestClock

SENSOR = "tele/plug1/SENSOR"


def _config(mosquitto: Any) -> dict[str, Any]:
    return {"gateway": {"name": "hall", "self_metrics_interval": 3600},
            "store": {"commit_interval": 0.05},
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            "devices": [{"id": "plug1", "profile": "tasmota", "topic": "plug1"}],
            "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}]}


def _powers(path: Path) -> list[float]:
    if not path.exists():
        return []
    return sorted(d["value"] for d in map(json.loads, path.read_text().splitlines())
                  if d["metric"] == "plug.power")


def _publish(client: mqtt.Client, power: int) -> None:
    client.publish(SENSOR, json.dumps({"ENERGY": {"Power": power}}), qos=1).wait_for_publish(5)


def _subscribed(gw: GatewayThread, publisher: mqtt.Client) -> None:
    # Connected is not yet subscribed: a message no device reads proves the subscription.
    for _ in range(20):
        publisher.publish("stat/plug1/RESULT", b'{"POWER":"ON"}', qos=1).wait_for_publish(5)
        if gw.wait_for(lambda s: s["ingest"]["received"] >= 1, 1.0):
            return
    raise AssertionError("the gateway never received a message")


def test_a_forwarder_that_dies_is_restarted_and_nothing_is_lost(mosquitto, publisher,
                                                                 tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    gw = GatewayThread(_config(mosquitto), tmp_path, TestClock(time.time()))
    forwarder = gw.gateway.forwarders[0]
    real_next, deaths = forwarder._next, []

    def next_rows(outbox):
        if not deaths:
            deaths.append(1)
            raise RuntimeError("a bug in the forwarder")
        return real_next(outbox)

    forwarder._next = next_rows
    gw.start()
    try:
        _subscribed(gw, publisher)
        for power in (1, 2, 3):
            _publish(publisher, power)
        out = gw.gateway.data_dir / "readings.jsonl"
        assert wait_until(lambda: _powers(out) == [1.0, 2.0, 3.0], 20), _powers(out)
        status = gw.status()
        [death] = status["deaths"]
        assert death["component"] == "sink local" and death["action"] == "restarted"
        assert death["error"] == "RuntimeError: a bug in the forwarder"
        assert gw.gateway.stats.total("gateway.component_deaths") == 1
        assert status["health"] == []  # restarted: nothing is wrong now
    finally:
        gw.stop()
    assert gw.gateway.supervisor.exit_status == 0
    [line] = [r for r in caplog.records if "sink local died" in r.getMessage()]
    assert line.levelname == "CRITICAL" and line.exc_info is not None  # with its traceback


def _dies_then_restarts(mosquitto, publisher, tmp_path, caplog, break_it, component: str):
    caplog.set_level(logging.INFO, logger="gateway")
    gw = GatewayThread(_config(mosquitto), tmp_path, TestClock(time.time()))
    gw.start()
    _subscribed(gw, publisher)
    _publish(publisher, 1)
    out = gw.gateway.data_dir / "readings.jsonl"
    assert wait_until(lambda: _powers(out) == [1.0], 20)
    break_it(gw)
    _publish(publisher, 2)  # the one the component dies on
    _publish(publisher, 3)
    # The gateway stops itself, exit status 1, saying why.
    assert wait_until(lambda: not gw._thread.is_alive(), 30), "the gateway kept running"
    gw.stop()
    assert gw.gateway.supervisor.exit_status == 1
    [death] = gw.gateway.supervisor.deaths
    assert death["component"] == component and death["action"] == "stopped the gateway"
    assert any(f"{component} died" in r.getMessage() and r.exc_info
               for r in caplog.records)
    assert 2.0 not in _powers(out)  # never accepted...
    # ...so never acknowledged: a fresh start gets it back from the broker.
    again = GatewayThread(_config(mosquitto), tmp_path, TestClock(time.time()))
    again.start()
    try:
        assert wait_until(lambda: _powers(out) == [1.0, 2.0, 3.0], 20), _powers(out)
    finally:
        again.stop()
    assert again.gateway.supervisor.exit_status == 0


def test_an_ingest_thread_that_dies_stops_the_gateway_and_loses_nothing(
        mosquitto, publisher, tmp_path, caplog):
    def break_ingest(gw: GatewayThread) -> None:
        def commit(outbox, batch):
            raise RuntimeError("a bug in ingest")
        gw.gateway.ingest._commit = commit

    _dies_then_restarts(mosquitto, publisher, tmp_path, caplog, break_ingest, "ingest")


def test_a_source_that_dies_stops_the_gateway_and_loses_nothing(mosquitto, publisher,
                                                                 tmp_path, caplog):
    def break_source(gw: GatewayThread) -> None:
        def submit(message, ack):
            raise RuntimeError("a bug in the source")
        gw.gateway.source.submit = submit

    _dies_then_restarts(mosquitto, publisher, tmp_path, caplog, break_source, "source mqtt")
