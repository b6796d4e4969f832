"""The gateway killed with SIGKILL again and again while it drains a backlog loses nothing.

A backlog builds while VictoriaMetrics is away; once it is back, the gateway is
killed (no clean-up, as in a crash or a power cut) at random moments of the
drain and started again. A batch sent but not yet recorded as delivered is sent
again after the restart (at least once), so duplicates are allowed and counted;
a reading that never arrives is not.
"""

import os
import random
import time

from programs.plugs import Fleet, SimulatedPlug, wait_for_readings

from reliability.ledger import fleet_ledger

SEED = int(os.environ.get("CRASH_TEST_SEED", "20261127"))
MESSAGES = 8000
KILLS = 4

PLUGS = [
    SimulatedPlug("defib-socket", "tasmota"),
    SimulatedPlug("stage-lights", "tasmota", channels=2),
    SimulatedPlug("heater-plug", "shelly"),
    SimulatedPlug("distribution-board", "shelly", channels=4),
]


def backlog(status: dict) -> int:
    return status["sinks"][0]["backlog_rows"] or 0


def test_sigkill_during_drain_loses_nothing(mosquitto, victoria, make_gateway):
    rng = random.Random(SEED)
    gw = make_gateway({
        "gateway": {"name": "hall"},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [p.device_config() for p in PLUGS],
        # Small batches: the drain takes long enough to be interrupted several times.
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url, "timeout": 5,
                   "batch_size": 100, "backoff_min": 0.2, "backoff_max": 1}],
    })
    victoria.stop()
    gw.start()
    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(MESSAGES)
        fleet.wait(timeout=90)
    expected = fleet.expected({"gateway": "hall"})
    total = sum(expected.values())
    assert gw.wait_for(lambda s: backlog(s) >= total, 60), gw.status()

    victoria.start()
    kills = []
    for _ in range(KILLS):
        # A random point of the drain: when the backlog has fallen below some level.
        level = int(backlog(gw.status() or {"sinks": [{"backlog_rows": 0}]}) *
                    rng.uniform(0.6, 0.95))
        drained = gw.wait_for(lambda s, n=level: backlog(s) <= n, 60)
        time.sleep(rng.uniform(0, 0.2))
        gw.kill()
        kills.append((level, drained))
        gw.start(timeout=30)
    assert gw.wait_for(lambda s: backlog(s) == 0, 120), gw.status()
    assert sum(1 for _, drained in kills if drained) >= KILLS - 1, kills

    got = wait_for_readings(victoria, expected, timeout=60)
    print(f"seed {SEED}; kills at backlog levels {kills}")
    fleet_ledger(f"SIGKILL x{KILLS} during drain", fleet, got, gw, "vm",
                 {"gateway": "hall"}).check()
    assert gw.stop() == 0
