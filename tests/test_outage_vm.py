"""VictoriaMetrics goes away while readings arrive: they wait in the store, then all arrive.

The gateway shows the outage in /status (sink state "retrying", backlog growing,
nothing delivered) and, once VictoriaMetrics is back, delivers the backlog by
itself until it is empty.
"""

from programs.plugs import Fleet, SimulatedPlug, difference, wait_for_readings

PLUGS = [
    SimulatedPlug("defib-socket", "tasmota", tags={"room": "entrance"}),
    SimulatedPlug("stage-lights", "tasmota", channels=2),
    SimulatedPlug("heater-plug", "shelly", tags={"room": "main-hall"}),
    SimulatedPlug("distribution-board", "shelly", channels=4),
]


def vm_sink(status: dict) -> dict:
    return next(k for k in status["sinks"] if k["name"] == "vm")


def test_readings_wait_out_an_outage_and_all_arrive(mosquitto, victoria, make_gateway):
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 0.5},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [p.device_config() for p in PLUGS],
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url, "timeout": 5,
                   "backoff_min": 0.5, "backoff_max": 2}],
    })
    gw.start()
    labels = {"gateway": "hall"}

    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(1000)
        fleet.wait(timeout=60)
        before = fleet.expected(labels)
        got = wait_for_readings(victoria, before, timeout=60)
        assert not before - got, difference(before, got)

        victoria.stop()
        fleet.start(4000, rate=800)
        assert gw.wait_for(lambda s: vm_sink(s)["state"] == "retrying", 30), gw.sink("vm")
        delivered_at_outage = gw.sink("vm")["delivered"]
        fleet.wait(timeout=60)
        during = fleet.expected(labels) - before
        waiting = sum(during.values())
        assert gw.wait_for(lambda s: vm_sink(s)["backlog_rows"] >= waiting, 30), (
            f"backlog should hold the {waiting} readings that arrived during the outage: "
            f"{gw.sink('vm')}")
        vm = gw.sink("vm")
        assert vm["state"] == "retrying", vm
        assert vm["delivered"] == delivered_at_outage, vm
        assert vm["last_error"], vm

        victoria.start()
        assert gw.wait_for(lambda s: vm_sink(s)["backlog_rows"] == 0
                           and vm_sink(s)["state"] in ("ok", "idle"), 60), gw.sink("vm")
        expected = fleet.expected(labels)

    got = wait_for_readings(victoria, expected, timeout=30)
    assert set(got) == set(expected), difference(expected, got)
    duplicates = sum((got - expected).values())
    print(f"{sum(expected.values())} readings expected, all arrived; {duplicates} duplicates")
    assert gw.sink("vm")["dropped"] == {}
    assert gw.stop() == 0
