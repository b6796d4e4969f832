"""Timestamps stay unique per series across a gateway restart.

InfluxDB keeps one point per series and timestamp, so the gateway makes each
reading's millisecond unique within its series, pushing a burst's timestamps
ahead of the clock. A burst is exactly what a restart brings: the broker hands
over everything queued while the gateway was away. If the gateway forgets, on
restart, which milliseconds it already used, readings after the restart land on
those milliseconds and overwrite the burst's points downstream.

The destination is VictoriaMetrics with deduplication at 1 ms, which keeps one
point per series and millisecond as InfluxDB does.

The plug's readings are stamped on receipt (`time: receive`), as those of a
device whose payloads carry no time of their own are (ESPHome, most JSON
devices): that is when a queued burst lands within milliseconds. A device that
sends its own time spreads its queue out over when it was measured instead
(tests/test_device_timestamps.py).
"""

import pytest
from programs.plugs import Fleet, SimulatedPlug, difference, wait_for_readings
from programs.victoria import VictoriaMetrics

PLUGS = [SimulatedPlug("defib-socket", "tasmota")]
QUEUED = 10_000  # one series' burst spans 10 s of milliseconds: longer than a restart takes
LIVE = 1000


@pytest.fixture
def one_point_per_ms(tmp_path_factory, request):
    vm = VictoriaMetrics(tmp_path_factory.mktemp("victoria-dedup"),
                         extra_flags=["-dedup.minScrapeInterval=1ms"])
    vm.start()
    try:
        yield vm
    finally:
        vm.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            report.sections.append(("victoria-metrics log", vm.log_text()[-8000:]))


def test_a_restart_after_a_burst_overwrites_nothing(mosquitto, one_point_per_ms,
                                                    make_gateway):
    vm = one_point_per_ms
    gw = make_gateway({
        "gateway": {"name": "hall"},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{**p.device_config(), "time": "receive"} for p in PLUGS],
        "sinks": [{"name": "vm", "type": "influx", "url": vm.url}],
    })
    gw.start()
    assert gw.stop() == 0  # the broker now keeps the gateway's session
    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(QUEUED)
        fleet.wait(timeout=60)  # all queued for the absent gateway
        gw.start()
        assert gw.wait_for(lambda s: s["ingest"]["received"] >= QUEUED, 60), gw.status()
        assert gw.stop() == 0  # a routine restart, e.g. an upgrade
        gw.start()
        fleet.start(LIVE, rate=500)
        fleet.wait(timeout=60)
        expected = fleet.expected({"gateway": "hall"})

    got = wait_for_readings(vm, expected, timeout=60, quiet=5)
    assert got == expected, difference(expected, got)
    assert gw.stop() == 0
