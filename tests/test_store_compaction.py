"""Compaction folds old readings into fewer rows without losing what they say.

Levels keep their mean, min, max and last; running totals their last value;
counts their sum; states every change. Every compacted row says how many
readings it holds, and a sink never receives a reading twice because of it.
"""

from pathlib import Path

from gateway.clock import ManualClock
from gateway.config.schema import CompactionRule, StoreSection
from gateway.config.validate import Bytes, Duration
from gateway.model import Reading, Row
from gateway.store.housekeeping import Housekeeper
from gateway.store.inflight import InFlight
from gateway.store.outbox import Outbox

T0 = 1_790_000_040.0  # a minute boundary
DAY = 86400.0
RULES = (CompactionRule(Duration(3600), Duration(60)),
         CompactionRule(Duration(DAY), Duration(900)))


def compact(box: Outbox, now: float, inflight: InFlight | None = None,
            rules: tuple[CompactionRule, ...] = RULES) -> Housekeeper:
    """Run housekeeping with a budget only compaction can meet (compact_at at 1 %)."""
    config = StoreSection(max_bytes=Bytes(1 << 40), min_free_bytes=Bytes(0), compact_at=1e-9,
                          compaction=rules)
    hk = Housekeeper(box.conn, box.path, config, inflight or InFlight(), ManualClock(now))
    for _ in range(100):
        if not hk.run(box.purge, seconds=10).busy:
            break
    return hk


def series(box: Outbox, metric: str, device: str = "p1") -> list[Row]:
    return [r for r in box.rows_after(0, 10**9)
            if r.info.metric == metric and r.info.tags["device"] == device]


def add(box: Outbox, readings: list[Reading]) -> None:
    box.append(readings)
    box.commit()


def gauge(metric: str, value: float, ts: float, priority: str = "normal",
          rollup: str | None = None, device: str = "p1") -> Reading:
    return Reading(metric, value, ts, "gauge", "W", {"device": device}, priority,
                   rollup)  # type: ignore[arg-type]


def test_a_level_keeps_its_mean_min_max_and_last_per_bucket(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    add(box, [gauge("plug.power", float(v), T0 + i * 10) for i, v in
              enumerate([10, 20, 30, 40, 50, 60, 1, 2, 3, 4, 5, 6])])  # two minutes
    compact(box, T0 + 2 * 3600)
    rows = series(box, "plug.power")
    assert [(r.ts, r.value) for r in rows] == [(T0, 35.0), (T0 + 60, 3.5)]
    first, second = (r.rollup for r in rows)
    assert first is not None and second is not None
    assert (first.samples, first.min, first.max, first.last) == (6, 10.0, 60.0, 60.0)
    assert first.last_ts == T0 + 50
    assert (second.samples, second.min, second.max, second.last) == (6, 1.0, 6.0, 6.0)


def test_older_readings_get_coarser_buckets_and_young_ones_stay_raw(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    now = T0 + 2 * DAY
    # one reading a minute for the whole two days
    add(box, [gauge("plug.power", 1.0, T0 + i * 60) for i in range(int(2 * DAY / 60))])
    compact(box, now)
    rows = series(box, "plug.power")
    assert sum(r.samples for r in rows) == int(2 * DAY / 60)
    old = [r for r in rows if now - r.ts > DAY + 900]
    assert old and all(r.samples == 15 for r in old[1:])  # 15-minute buckets
    young = [r for r in rows if now - r.ts < 3600 - 60]
    assert young and all(r.rollup is None for r in young)  # the last hour untouched


def test_a_running_total_keeps_its_last_value(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    add(box, [gauge("plug.energy_total", 100 + i * 0.1, T0 + i * 10, rollup="last")
              for i in range(6)])
    compact(box, T0 + 2 * 3600)
    (row,) = series(box, "plug.energy_total")
    assert row.value == row.rollup.last == 100.5  # type: ignore[union-attr]
    assert row.rollup.min == 100.0  # type: ignore[union-attr]


def test_a_count_is_summed(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    add(box, [Reading("door.openings", 2.0, T0 + i * 10, "count", "", {"device": "p1"})
              for i in range(6)])
    compact(box, T0 + 2 * 3600)
    (row,) = series(box, "door.openings")
    assert row.value == 12.0 and row.samples == 6


def test_a_state_keeps_every_change(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    values = [1, 1, 1, 0, 0, 0, 1, 1, 1, 1]  # within one minute
    add(box, [gauge("plug.switch", float(v), T0 + i * 5, rollup="changes")
              for i, v in enumerate(values)])
    compact(box, T0 + 2 * 3600)
    rows = series(box, "plug.switch")
    assert [(r.ts - T0, r.value, r.samples) for r in rows] == [(0, 1.0, 3), (15, 0.0, 3),
                                                               (30, 1.0, 4)]


def test_a_sink_never_receives_a_reading_twice(tmp_path: Path):
    """A sink halfway through the backlog gets, after compaction, exactly the rest."""
    box = Outbox(tmp_path)
    box.register_sinks(["file", "vm"])
    add(box, [gauge("plug.power", float(i), T0 + i) for i in range(600)])  # ten minutes
    delivered = box.rows_after(0, 257)  # "file" has delivered 257 of them
    box.confirm("file", delivered[-1].id)
    compact(box, T0 + 2 * 3600)
    rest = box.fetch("file", 10**6)
    assert sum(r.samples for r in rest) == 600 - 257
    assert min(r.rollup.min if r.rollup else r.value for r in rest) == 257.0
    assert sum(r.samples for r in box.fetch("vm", 10**6)) == 600
    assert len(box.fetch("vm", 10**6)) < 15  # folded into about one row a minute


def test_rows_a_sink_is_sending_stay_as_they_are(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    add(box, [gauge("plug.power", float(i), T0 + i) for i in range(300)])
    sending = box.rows_after(0, 100)
    inflight = InFlight()
    inflight.narrow("vm", 0, sending[-1].id)
    compact(box, T0 + 2 * 3600, inflight)
    rows = box.rows_after(0, 10**6)
    assert [r.id for r in rows[:100]] == [r.id for r in sending]
    assert all(r.rollup is None for r in rows[:100])
    assert sum(r.samples for r in rows) == 300 and len(rows) < 110


def test_critical_readings_follow_only_their_own_rules(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    add(box, [gauge("plug.power", 1.0, T0 + i * 10, "critical", device="defib")
              for i in range(12)])
    add(box, [gauge("plug.power", 1.0, T0 + i * 10, "normal") for i in range(12)])
    compact(box, T0 + 2 * 3600)  # the default-like rules name low, normal and high only
    assert len(series(box, "plug.power", "defib")) == 12
    assert len(series(box, "plug.power")) == 2
    compact(box, T0 + 2 * 3600,
            rules=(CompactionRule(Duration(3600), Duration(60), ("critical",)),))
    assert len(series(box, "plug.power", "defib")) == 2


def test_compaction_comes_before_eviction(tmp_path: Path):
    """A week that does not fit raw fits compacted: nothing is evicted, nothing lost."""
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    week = 7 * DAY
    batch = []
    for i in range(int(week / 30)):
        batch.append(gauge("plug.power", float(i % 100), T0 + i * 30))
        if len(batch) >= 5000:
            add(box, batch)
            batch = []
    add(box, batch)
    box.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    config = StoreSection(min_free_bytes=Bytes(0), compaction=RULES)
    raw = Housekeeper(box.conn, box.path, config, InFlight(), ManualClock(0.0)).measure().used
    config = StoreSection(max_bytes=Bytes(raw // 2), min_free_bytes=Bytes(0), compaction=RULES)
    hk = Housekeeper(box.conn, box.path, config, InFlight(), ManualClock(T0 + week))
    for _ in range(200):
        done = hk.run(box.purge, seconds=10)
        if not done.busy:
            break
    assert done.space is not None and done.space.pressure < 1
    assert box.losses_by_priority() == {}
    assert sum(r.samples for r in box.rows_after(0, 10**7)) == int(week / 30)
