"""The gateway killed with SIGKILL again and again during ingest loses nothing.

Plugs keep publishing numbered messages while the gateway is killed (no clean-up
at all, as in a crash or a power cut of the process) at random moments and
started again. Every message the broker acknowledged to a plug must end up in
VictoriaMetrics: the gateway acknowledges a message to the broker only after
committing it, so a crash leaves the rest with the broker, which sends it again.
Delivery is at-least-once, so duplicates are allowed; they are counted.
"""

import os
import random
import time

from programs.plugs import Fleet, SimulatedPlug, wait_for_readings

from reliability.ledger import fleet_ledger

SEED = int(os.environ.get("CRASH_TEST_SEED", "20261122"))  # another seed: other moments
MESSAGES = 12_000
RATE = 250  # messages per second, all plugs together: about 48 s of publishing, so most
# kills fall while plugs still publish even when restarts are slow on a loaded machine
KILLS = 5

PLUGS = [
    SimulatedPlug("defib-socket", "tasmota"),
    SimulatedPlug("kitchen-urn", "tasmota"),
    SimulatedPlug("stage-lights", "tasmota", channels=2),
    SimulatedPlug("heater-plug", "shelly"),
    SimulatedPlug("distribution-board", "shelly", channels=4),
]


def test_sigkill_during_ingest_loses_no_acknowledged_reading(mosquitto, victoria,
                                                             make_gateway):
    rng = random.Random(SEED)
    gw = make_gateway({
        "gateway": {"name": "hall"},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [p.device_config() for p in PLUGS],
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url, "timeout": 10,
                   "backoff_min": 0.5, "backoff_max": 2}],
    })
    gw.start()
    kills = []
    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(MESSAGES, rate=RATE)
        for _ in range(KILLS):
            # A random moment during ingest: after a random number of messages
            # has reached this gateway process, plus a random fraction of a second.
            threshold = rng.randint(0, 1500)
            reached = gw.wait_for(lambda s, t=threshold: s["ingest"]["received"] >= t, 15)
            time.sleep(rng.uniform(0, 0.3))
            received = (gw.status() or {}).get("ingest", {}).get("received")
            gw.kill()
            kills.append((threshold, reached, received, fleet.published))
            time.sleep(rng.uniform(0, 1.0))  # the broker queues what arrives meanwhile
            gw.start(timeout=30)
        fleet.wait(timeout=90)
        accepted = fleet.accepted()
        expected = fleet.expected({"gateway": "hall"})

    print(f"seed {SEED}; kills (threshold, reached, received by that process, "
          f"published so far): {kills}")
    assert len(accepted) == MESSAGES, f"the broker acknowledged only {len(accepted)}"
    still_publishing = [k for k in kills if k[3] < MESSAGES]
    assert len(still_publishing) >= 3, f"most kills should fall while plugs publish: {kills}"

    got = wait_for_readings(victoria, expected, timeout=90)
    assert gw.wait_for(lambda s: s["sinks"][0]["backlog_rows"] == 0, 30), gw.status()
    fleet_ledger(f"SIGKILL x{KILLS} during ingest", fleet, got, gw, "vm",
                 {"gateway": "hall"}).check()
    assert gw.stop() == 0
