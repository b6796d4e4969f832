"""The disk under the store fills up mid-ingest (a real, small file system).

The gateway stops acknowledging messages (the broker keeps them), says why in
`gateway status`, keeps running and keeps its latest values; once space returns
it commits and acknowledges everything by itself. Nothing is lost.
"""

import time

import pytest
from programs.plugs import Fleet, SimulatedPlug, wait_for_readings
from programs.smallfs import SmallFilesystem, can_mount

from reliability.ledger import fleet_ledger

pytestmark = pytest.mark.skipif(not can_mount(), reason="mounting a small tmpfs needs root "
                                                        "(CAP_SYS_ADMIN) on this machine")

PLUGS = [SimulatedPlug("defib-socket", "tasmota"), SimulatedPlug("kitchen-urn", "tasmota"),
         SimulatedPlug("heater-plug", "shelly")]


def ingest(status: dict) -> dict:
    return status["ingest"]


def test_a_full_disk_holds_messages_with_the_broker_and_recovers(mosquitto, victoria,
                                                                 make_gateway, tmp_path):
    with SmallFilesystem(tmp_path / "small", 8 * 1024 * 1024) as fs:
        gw = make_gateway({
            "gateway": {"name": "hall", "data_dir": str(fs.path / "data")},
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
            # min_free_bytes 0: nothing is evicted to make room; the disk really fills.
            "store": {"min_free_bytes": 0},
            "devices": [p.device_config() for p in PLUGS],
            "sinks": [{"name": "vm", "type": "influx", "url": victoria.url,
                       "backoff_min": 0.5, "backoff_max": 2}],
        })
        victoria.stop()  # the backlog stays in the store
        gw.start()
        fs.fill(leave=600 * 1024)  # another program took nearly all the disk
        with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
            fleet.start(30_000, rate=1500)
            assert gw.wait_for(lambda s: ingest(s)["store_fault"] == "disk_full", 60), \
                gw.status()
            time.sleep(2)
            stored = ingest(gw.status())["stored"]
            time.sleep(2)
            held = gw.status()
            assert ingest(held)["stored"] == stored, "nothing is stored while the disk is full"
            assert held["mqtt"]["connected"] and gw.running
            assert held["devices"]["defib-socket"]["values"], "latest values kept in memory"
            shown = gw.cli("status", "--config", str(gw.config_path))
            assert "STORE NOT WRITABLE (disk_full)" in shown.stdout, shown.stdout
            assert "the broker keeps the messages" in shown.stdout
            fleet.wait(timeout=120)  # the broker acknowledged every message to the plugs

            fs.make_room()
            assert gw.wait_for(lambda s: ingest(s)["store_writable"], 30), gw.status()
            expected = fleet.expected({"gateway": "hall"})
            total = sum(expected.values())
            assert gw.wait_for(lambda s: ingest(s)["stored"] >= total, 60), ingest(gw.status())
        victoria.start()
        assert gw.wait_for(lambda s: s["sinks"][0]["backlog_rows"] == 0, 120), gw.status()
        got = wait_for_readings(victoria, expected, timeout=60)
        fleet_ledger("disk full mid-ingest", fleet, got, gw, "vm", {"gateway": "hall"}).check()
        assert "disk is full" in gw.log_text() or "is full" in gw.log_text()
        assert gw.stop() == 0
