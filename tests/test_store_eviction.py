"""Over its budget, the store evicts the oldest readings of the lowest priority first,
critical last of all, and counts every reading evicted for each sink that had not
confirmed it, by reason and priority."""

from pathlib import Path

from gateway.clock import ManualClock
from gateway.config.schema import CompactionRule, StoreSection
from gateway.config.validate import Bytes, Duration
from gateway.model import Reading
from gateway.store.housekeeping import Housekeeper
from gateway.store.inflight import InFlight
from gateway.store.outbox import Outbox

T0 = 1_790_000_000.0
PRIORITIES = ("low", "normal", "high", "critical")


def fill(box: Outbox, n: int, start: float = T0) -> float:
    """n readings of each priority, one a second, interleaved as they would arrive."""
    t = start
    batch = []
    for i in range(n):
        for p in PRIORITIES:
            batch.append(Reading("plug.power", float(i), t, "gauge", "W", {"device": f"d-{p}"}, p))
        t += 1.0
        if len(batch) >= 4000:
            box.append(batch)
            box.commit()
            batch = []
    box.append(batch)
    box.commit()
    return t


def keeper(box: Outbox, now: float, inflight: InFlight | None = None, **store) -> Housekeeper:
    config = StoreSection(min_free_bytes=Bytes(0), compaction=(), **store)
    return Housekeeper(box.conn, box.path, config, inflight or InFlight(), ManualClock(now))


def used(box: Outbox, now: float) -> int:
    """Bytes the store's data takes now (the write-ahead log checkpointed away first)."""
    box.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return keeper(box, now, max_bytes=Bytes(1 << 40)).measure().used


def priorities_left(box: Outbox) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in box.rows_after(0, 10**9):
        out[row.info.priority] = out.get(row.info.priority, 0) + 1
    return out


def test_eviction_takes_low_then_normal_and_keeps_critical(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    now = fill(box, 40_000)
    hk = keeper(box, now, max_bytes=Bytes(int(used(box, now) * 0.6)))
    done = hk.run(box.purge, seconds=30)
    assert done.space is not None and done.space.used <= done.space.budget
    left = priorities_left(box)
    assert "low" not in left, left
    assert left["critical"] == 40_000 and left["high"] == 40_000, left
    assert 0 < left.get("normal", 0) < 40_000, left
    losses = box.losses_by_priority()
    assert losses[("evicted_size", "vm", "low")] == 40_000
    assert losses[("evicted_size", "vm", "normal")] == 40_000 - left["normal"]
    assert ("evicted_size", "vm", "high") not in losses


def test_the_oldest_go_first(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    now = fill(box, 40_000)
    hk = keeper(box, now, max_bytes=Bytes(int(used(box, now) * 0.6)))
    hk.run(box.purge, seconds=30)
    normal = [r.value for r in box.rows_after(0, 10**9) if r.info.priority == "normal"]
    assert normal == sorted(normal) and normal[-1] == 39_999.0
    # what is left is the newest stretch, with no hole in it
    assert normal == [float(v) for v in range(int(normal[0]), 40_000)]


def test_a_sink_loses_only_what_it_had_not_confirmed(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["file", "vm"])
    now = fill(box, 20_000)
    # "file" has delivered the first 10,000 seconds' readings; "vm" nothing.
    firsts = box.rows_after(0, 40_000)
    box.confirm("file", firsts[-1].id)
    hk = keeper(box, now, max_bytes=Bytes(int(used(box, now) * 0.5)))
    hk.run(box.purge, seconds=30)
    losses = box.losses_by_priority()
    low_file, low_vm = losses[("evicted_size", "file", "low")], \
        losses[("evicted_size", "vm", "low")]
    assert low_vm == 20_000
    assert low_file == 10_000  # the other half it had already


def test_critical_readings_go_when_nothing_else_is_left(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    t = T0
    box.append([Reading("plug.power", float(i), t + i, "gauge", "W", {"device": "defib"},
                        "critical") for i in range(60_000)])
    box.commit()
    now = t + 60_000
    hk = keeper(box, now, max_bytes=Bytes(int(used(box, now) * 0.5)))
    hk.run(box.purge, seconds=30)
    values = [r.value for r in box.rows_after(0, 10**9)]
    assert values and values[-1] == 59_999.0 and values[0] > 0
    assert box.losses_by_priority()[("evicted_size", "vm", "critical")] == values[0]


def test_rows_a_sink_is_sending_are_not_evicted(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    now = fill(box, 20_000)
    inflight = InFlight()
    first_low = [r for r in box.rows_after(0, 100) if r.info.priority == "low"]
    # vm is sending the first 100 rows right now
    inflight.narrow("vm", 0, box.rows_after(0, 100)[-1].id)
    hk = keeper(box, now, inflight, max_bytes=Bytes(int(used(box, now) * 0.6)))
    hk.run(box.purge, seconds=30)
    kept = {r.id for r in box.rows_after(0, 10**9)}
    assert all(r.id in kept for r in first_low)
    assert "low" not in {r.info.priority for r in box.rows_after(100, 10**9)
                         if r.id > first_low[-1].id}


def test_max_age_evicts_old_readings_of_every_priority(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    now = fill(box, 7200)  # two hours of readings
    hk = keeper(box, now, max_age=Duration(3600))
    done = hk.run(box.purge, seconds=30)
    rows = box.rows_after(0, 10**9)
    assert min(r.ts for r in rows) >= now - 3600
    assert len(rows) == 4 * 3600
    assert sum(n for (reason, _), n in done.evicted.items() if reason == "evicted_max_age") \
        == 4 * 3600
    losses = box.losses_by_priority()
    assert {p: losses[("evicted_max_age", "vm", p)] for p in PRIORITIES} == \
        dict.fromkeys(PRIORITIES, 3600)


def test_the_budget_holds_across_a_restart(tmp_path: Path):
    """A store left over its budget (a smaller max_bytes, say) shrinks on the next start."""
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    now = fill(box, 30_000)
    size = used(box, now)
    box.close()
    again = Outbox(tmp_path)
    hk = keeper(again, now, max_bytes=Bytes(size // 2))
    assert hk.measure().pressure > 1
    done = hk.run(again.purge, seconds=30)
    assert done.space is not None and done.space.pressure <= 1
    assert again.losses_by_priority()[("evicted_size", "vm", "low")] == 30_000


def test_slow_compaction_does_not_starve_eviction(tmp_path: Path):
    """On a slow card a compaction step can take most of a round, and under steady input
    a pass never ends (new readings keep ageing into a rule). Over the budget, eviction
    still gets its share of every round: the store must not outgrow its budget."""
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    now = fill(box, 40_000)
    config = StoreSection(max_bytes=Bytes(int(used(box, now) * 0.6)), min_free_bytes=Bytes(0),
                          compaction=(CompactionRule(Duration(3600), Duration(60)),))
    clock = ManualClock(now)
    hk = Housekeeper(box.conn, box.path, config, InFlight(), clock)
    step = hk.compactor.step

    def slow_step() -> object:
        clock.advance(0.1)  # each step takes 0.1 s of a 0.25 s round
        return step()

    hk.compactor.step = slow_step  # type: ignore[method-assign]
    done = hk.run(box.purge, seconds=0.25)
    assert done.compacted, "compaction still goes first"
    assert done.evicted[("evicted_size", "low")] > 0, done
    assert done.space is not None and done.space.pressure <= 1.0, done.space
