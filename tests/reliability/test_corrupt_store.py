"""A damaged store file: the gateway moves it aside, salvages what it can read, says so
(status, log, the self-metric gateway.store_recovered) and runs on. Nobody has to delete
a file, and what the damage cost is counted.
"""

import json
import time
from pathlib import Path

from programs.plugs import Fleet, SimulatedPlug, readings_in, wait_for_readings

from reliability.ledger import fleet_ledger

PLUGS = [SimulatedPlug("defib-socket", "tasmota"), SimulatedPlug("kitchen-urn", "tasmota"),
         SimulatedPlug("heater-plug", "shelly")]
LABELS = {"gateway": "hall"}


def damage(path: Path, at: float, pages: int = 4) -> None:
    """Overwrite whole pages `at` a fraction of the file, as a failing SD card might."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(int(size * at) // 4096 * 4096)
        f.write(b"\xde\xad\xbe\xef" * 1024 * pages)
        f.flush()


def config(mosquitto, victoria) -> dict:
    return {
        "gateway": {"name": "hall", "self_metrics_interval": 1},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [p.device_config() for p in PLUGS],
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url, "timeout": 5,
                   "backoff_min": 0.5, "backoff_max": 2}],
    }


def test_a_store_damaged_while_stopped_is_salvaged_on_start(mosquitto, victoria,
                                                             make_gateway):
    gw = make_gateway(config(mosquitto, victoria))
    victoria.stop()
    gw.start()
    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(20_000)
        fleet.wait(timeout=60)
    total = sum(fleet.expected(LABELS).values())
    assert gw.wait_for(lambda s: s["ingest"]["stored"] >= total, 60)
    assert gw.stop() == 0  # the WAL is checkpointed into the file on a clean stop
    store = gw.data_dir / "gateway.db"
    damage(store, 0.5)

    victoria.start()
    gw.start()
    status = gw.status()
    (event,) = status["store_events"]
    detail = json.loads(event["detail"])
    assert event["kind"] == "recovered" and Path(detail["moved_to"]).exists()
    assert Path(detail["moved_to"]).parent == gw.data_dir
    assert gw.wait_for(lambda s: s["sinks"][0]["backlog_rows"] == 0, 120), gw.status()
    shown = gw.cli("status", "--config", str(gw.config_path)).stdout
    assert "recovered at" in shown and "salvaged" in shown, shown
    assert "moved to" in gw.log_text()
    # The event is a self-metric an alert can watch, forwarded like any reading.
    assert gw.wait_for(lambda s: readings_in(victoria, '{__name__="gateway_store_recovered"}'),
                       30)
    got = wait_for_readings(victoria, fleet.expected(LABELS), timeout=20, quiet=5)
    book = fleet_ledger("store damaged while stopped", fleet, got, gw, "vm", LABELS)
    assert book.dropped.get("corrupt"), book
    book.check(exact=False)  # what the damage cost is counted: at most so many readings
    assert book.dropped_total - book.missing < 500, book  # and the count is close
    assert gw.stop() == 0


def test_a_store_damaged_while_running_is_recovered_in_place(mosquitto, victoria,
                                                             make_gateway):
    gw = make_gateway(config(mosquitto, victoria))
    victoria.stop()
    gw.start()
    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(40_000)
        fleet.wait(timeout=90)
        total = sum(fleet.expected(LABELS).values())
        assert gw.wait_for(lambda s: s["ingest"]["stored"] >= total, 60)
        time.sleep(3)  # checkpoints carry the backlog from the WAL into the file
        pid = gw.proc.pid if gw.proc else None
        damage(gw.data_dir / "gateway.db", 0.3, pages=8)
        # The sink comes back: reading the backlog runs into the damage.
        victoria.start()
        assert gw.wait_for(lambda s: s["store_events"], 60), gw.log_text()[-3000:]
        assert gw.proc is not None and gw.proc.pid == pid, "recovered without a restart"
        assert "restarting to move it aside" in gw.log_text()
        # Devices keep publishing after the recovery; those readings arrive too.
        fleet.start(3000)
        fleet.wait(timeout=60)
    assert gw.wait_for(lambda s: s["sinks"][0]["backlog_rows"] == 0, 120), gw.status()
    got = wait_for_readings(victoria, fleet.expected(LABELS), timeout=20, quiet=5)
    book = fleet_ledger("store damaged while running", fleet, got, gw, "vm", LABELS)
    book.check(exact=False)
    assert gw.stop() == 0
