"""The clock jumps an hour backwards mid-ingest (an NTP step, a Pi without a real-time
clock): nothing is lost or overwritten, each series stays in order, and the gateway
says what it did."""

import time
from collections import defaultdict

from programs.counters import CountingDevice
from programs.plugs import Fleet, wait_for_readings

from reliability.inprocess import GatewayThread, TestClock
from reliability.ledger import fleet_ledger

DEVICES = [CountingDevice("defib-socket", "critical"), CountingDevice("kitchen-urn"),
           CountingDevice("hall-bulb", "low")]
LABELS = {"gateway": "hall"}


class Status:
    """`fleet_ledger` reads the gateway's counts through `status()`."""

    def __init__(self, gw: GatewayThread) -> None:
        self.gw = gw

    def status(self) -> dict:
        return self.gw.status()


def test_a_clock_stepping_back_loses_and_overwrites_nothing(mosquitto, victoria, tmp_path,
                                                           caplog):
    clock = TestClock(time.time())
    gw = GatewayThread({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [d.device_config() for d in DEVICES],
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url}],
    }, tmp_path, clock)
    gw.start()
    with Fleet(DEVICES, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(3000, rate=300)
        time.sleep(5)
        clock.set(jump=-3600)  # an hour back, mid-ingest
        fleet.wait(timeout=60)
    expected = fleet.expected(LABELS)
    assert gw.wait_for(lambda s: s["sinks"][0]["backlog_rows"] == 0
                       and s["ingest"]["stored"] >= sum(expected.values()), 60)
    got = wait_for_readings(victoria, expected, timeout=30, match='{__name__="test_n"}')
    book = fleet_ledger("clock an hour back", fleet, got, Status(gw), "vm", LABELS)
    shifted = gw.gateway.stats.total("gateway.store_timestamps_shifted")
    gw.stop()
    book.check()
    # Every reading kept its own timestamp (none overwrote another) and each series
    # is in the order its device sent it.
    times = defaultdict(list)
    for item in victoria.export('{__name__="test_n"}'):
        device = item["metric"]["device"]
        times[device] = [t for _, t in sorted(zip(item["values"], item["timestamps"],
                                                   strict=True))]
    for device, ts in times.items():
        assert len(set(ts)) == len(ts), f"{device}: two readings share a timestamp"
        assert ts == sorted(ts), f"{device}: readings out of the order they were sent"
    # And the gateway says what it did.
    assert shifted > 0
    assert any("the clock went back (by up to 3" in r.getMessage() for r in caplog.records)
