"""A week without the sink, at accelerated time, in a store too small for it.

VictoriaMetrics is away for a simulated week (10,080 times real speed) while
devices of every priority keep publishing. The store is bounded (1 MiB): old
readings are compacted first, then the oldest low-priority ones evicted, and
the defibrillator's critical readings kept. When VictoriaMetrics returns, the
backlog drains by itself. The closing count: every accepted reading is in
VictoriaMetrics, as itself or inside a compacted point (whose min and max name
exactly which readings it holds), or counted by the gateway as dropped.
"""

import time
from collections import Counter, defaultdict

from programs.counters import CountingDevice
from programs.plugs import Fleet, Key, _key

from reliability.inprocess import GatewayThread, TestClock
from reliability.ledger import ledger, sink_drops

WEEK = 7 * 86400.0
REAL_SECONDS = 60.0
RATE = 1500  # messages a second, all devices together
DEVICES = [
    CountingDevice("defib-socket", "critical"),
    CountingDevice("heating", "high"),
    CountingDevice("kitchen-urn", "normal"),
    CountingDevice("hall-bulb-1", "low"),
    CountingDevice("hall-bulb-2", "low"),
]
LABELS = {"gateway": "hall"}


def held_in_victoria(victoria) -> tuple[Counter[Key], Counter[Key], int]:
    """Raw readings as Keys; readings inside compacted points as Keys; how many such points.

    A compacted point stands at its first reading's time in `test_n` (its mean)
    with `test_n_min`, `test_n_max` and `test_n_samples` at the same time.
    """
    series: dict[tuple[str, frozenset], dict[int, float]] = defaultdict(dict)
    for item in victoria.export('{__name__=~"test_n.*"}'):
        labels = dict(item["metric"])
        name = labels.pop("__name__")
        for ts, value in zip(item["timestamps"], item["values"], strict=True):
            series[(name, frozenset(labels.items()))][ts] = value
    raw: Counter[Key] = Counter()
    spans: dict[frozenset, list[tuple[float, float, int]]] = defaultdict(list)
    for (name, labels), points in series.items():
        if name != "test_n":
            continue
        samples = series.get(("test_n_samples", labels), {})
        lows, highs = series.get(("test_n_min", labels), {}), series.get(("test_n_max", labels), {})
        for ts, value in points.items():
            if ts in samples:
                spans[labels].append((lows[ts], highs[ts], int(samples[ts])))
            else:
                raw[_key("test_n", dict(labels), value)] += 1
    return raw, spans_to_keys(spans), sum(len(s) for s in spans.values())


def spans_to_keys(spans: dict[frozenset, list[tuple[float, float, int]]]) -> Counter[Key]:
    """The readings compacted points hold: per series, the numbers from min to max.

    The fleet numbers its messages round-robin, so a device's numbers are
    len(DEVICES) apart; a point's samples must be exactly the numbers in its span.
    """
    out: Counter[Key] = Counter()
    for labels, found in spans.items():
        for low, high, samples in found:
            numbers = range(int(low), int(high) + 1, len(DEVICES))
            assert len(numbers) == samples, (dict(labels), low, high, samples)
            out.update(("test_n", labels, float(n)) for n in numbers)
    return out


def test_a_week_offline_arrives_compacted_and_counted(mosquitto, victoria, tmp_path):
    # Begun four days further back than the week needs: on a loaded machine the
    # publishing takes longer and the simulated clock runs on to nine or ten days, and
    # VictoriaMetrics silently drops samples more than two days ahead of its own clock
    # (the gateway is told 204 for them), which read as readings lost.
    clock = TestClock(time.time() - WEEK - 4 * 86400, speed=WEEK / REAL_SECONDS)
    gw = GatewayThread({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        # Compacting only readings over four days old leaves the last four days raw, more
        # than 1 MiB holds: the oldest low-priority readings must be evicted as well.
        "store": {"max_bytes": "1MiB", "min_free_bytes": 0,
                  "compaction": [{"older_than": "4d", "bucket": "15m",
                                  "priorities": ["low", "normal", "high", "critical"]}]},
        "devices": [d.device_config() for d in DEVICES],
        "sinks": [{"name": "vm", "type": "influx", "url": victoria.url, "timeout": 5,
                   "backoff_min": 0.5, "backoff_max": 2}],
    }, tmp_path, clock)
    victoria.stop()
    gw.start()
    started = clock()
    with Fleet(DEVICES, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(int(RATE * REAL_SECONDS), rate=RATE)
        fleet.wait(timeout=REAL_SECONDS + 60)
    expected = fleet.expected(LABELS)
    total = sum(expected.values())
    assert gw.wait_for(lambda s: s["ingest"]["stored"] >= total, 30), gw.status()["ingest"]
    week = (clock() - started) / 86400
    clock.set(speed=1.0)
    status = gw.status()
    vm = status["sinks"][0]
    assert vm["state"] == "retrying" and vm["delivered"] == 0, vm
    space = status["store_space"]
    print(f"after {week:.1f} simulated days: backlog {vm['backlog_rows']} rows for {total} "
          f"readings; store {space['bytes']} of {space['budget_bytes']} bytes; compacted "
          f"{space['compacted']}; evicted {space['evicted']}")
    assert week >= 6.5
    assert space["compacted"], "a week in 1 MiB needs compaction"
    # How much is folded and how much evicted depends on how the week's rounds fall;
    # what must hold: the critical readings are folded, never evicted, the store keeps
    # fewer rows than readings within its budget, and the ledger below accounts for
    # every reading.
    assert space["compacted"].get("critical"), space["compacted"]
    assert vm["backlog_rows"] < total, "compaction and eviction keep the rows down"
    assert space["bytes"] <= space["budget_bytes"] * 1.1, space
    # Whether anything must be evicted depends on how the week's rounds fall (compaction
    # may make room enough); when something is, low-priority readings go first.
    assert all(k.endswith("/low") for k in space["evicted"]), space["evicted"]

    victoria.start()
    assert gw.wait_for(lambda s: s["sinks"][0]["backlog_rows"] == 0, 120), gw.status()["sinks"]
    drops = sink_drops(gw.status(), "vm")
    own = gw.status()["ingest"]["stored"] - total  # self-metric readings (low priority)
    gw.stop()

    raw, covered, points = held_in_victoria(victoria)
    print(f"VictoriaMetrics holds {sum(raw.values())} raw readings and {points} compacted "
          f"points standing for {sum(covered.values())} more")
    published = sum(fleet.expected(LABELS, fleet.sent()).values())
    book = ledger("a week offline in 1 MiB", published, expected, raw, drops, covered)
    book.own = int(own)
    book.check(exact=True)
    # Critical readings are evicted last of all: the defibrillator's are all there.
    defib = {k: n for k, n in expected.items() if dict(k[1])["device"] == "defib-socket"}
    assert all(raw[k] + covered[k] >= n for k, n in defib.items())
    assert not any("critical" in k for k in space["evicted"]), space["evicted"]
