"""A row leaves the store only when every sink has confirmed it; cursors survive reopening."""

from gateway.model import Reading
from gateway.store.outbox import Outbox


def reading(value, ts=1_700_000_000.0, metric="plug.power", device="p1"):
    return Reading(metric, value, ts, "gauge", "W", {"device": device}, "normal")


def fill(outbox, n, start=0):
    outbox.append(reading(float(start + i), ts=1_700_000_000 + start + i) for i in range(n))
    outbox.commit()


def test_rows_stay_until_every_sink_confirms(tmp_path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm", "dd"])
    fill(box, 10)
    vm = box.fetch("vm", 100)
    assert [r.value for r in vm] == [float(i) for i in range(10)]
    box.confirm("vm", vm[-1].id)
    box.purge()
    assert box.stored_rows() == 10  # dd has not confirmed
    assert box.fetch("vm", 100) == []
    dd = box.fetch("dd", 4)
    box.confirm("dd", dd[-1].id)
    box.purge()
    assert box.stored_rows() == 6
    assert [r.value for r in box.fetch("dd", 100)] == [float(i) for i in range(4, 10)]


def test_cursors_and_rows_survive_reopening(tmp_path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    fill(box, 5)
    box.confirm("vm", box.fetch("vm", 2)[-1].id)
    box.close()
    again = Outbox(tmp_path)
    again.register_sinks(["vm"])
    assert [r.value for r in again.fetch("vm", 100)] == [2.0, 3.0, 4.0]


def test_uncommitted_readings_are_not_visible_to_sinks(tmp_path):
    writer = Outbox(tmp_path)
    writer.register_sinks(["vm"])
    reader = Outbox(tmp_path)
    writer.append([reading(1.0)])
    assert reader.fetch("vm", 10) == []
    writer.commit()
    assert len(reader.fetch("vm", 10)) == 1


def test_row_ids_are_never_reused_after_everything_was_purged(tmp_path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    fill(box, 3)
    box.confirm("vm", box.fetch("vm", 10)[-1].id)
    box.purge()
    assert box.stored_rows() == 0
    box.close()
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    fill(box, 2, start=100)
    assert [r.value for r in box.fetch("vm", 10)] == [100.0, 101.0]


def test_a_new_sink_receives_what_is_waiting_and_a_removed_sink_stops_blocking(tmp_path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm", "old"])
    fill(box, 4)
    box.confirm("vm", box.fetch("vm", 2)[-1].id)
    box.purge()
    assert box.stored_rows() == 4  # "old" never confirmed anything
    gone = box.register_sinks(["vm", "dd"])
    assert gone == ["old"]
    dd = box.fetch("dd", 10)
    assert [r.value for r in dd] == [0.0, 1.0, 2.0, 3.0]  # everything still stored
    box.confirm("dd", dd[-1].id)
    box.confirm("vm", dd[-1].id)
    box.purge()
    assert box.stored_rows() == 0  # "old" no longer holds rows back


def test_same_millisecond_readings_of_a_series_get_distinct_timestamps(tmp_path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    box.append([reading(float(i), ts=1_700_000_000.0005) for i in range(5)])
    box.append([reading(9.0, ts=1_700_000_000.0005, device="p2")])
    box.commit()
    rows = box.fetch("vm", 10)
    p1 = [r.ts_ms for r in rows if r.info.tags["device"] == "p1"]
    assert p1 == [1_700_000_000_000 + i for i in range(5)]
    assert [r.ts_ms for r in rows if r.info.tags["device"] == "p2"] == [1_700_000_000_000]


def test_series_metadata_round_trips(tmp_path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    r = Reading("plug.energy_total", 1.5, 1_700_000_000.0, "gauge", "kWh",
                {"device": "p1", "room": "hall"}, "critical", "last")
    box.append([r])
    box.commit()
    (row,) = box.fetch("vm", 1)
    assert row.reading == r


def test_dead_letters_and_losses_are_counted(tmp_path):
    box = Outbox(tmp_path)
    box.register_sinks(["dd"])
    fill(box, 3)
    rows = box.fetch("dd", 10)
    box.dead_letter("dd", rows[:2], "rejected_400")
    box.count_loss("too_old", "dd", 1)
    assert box.dead_letter_counts() == {("dd", "rejected_400"): 2}
    assert box.losses() == {("rejected_400", "dd"): 2, ("too_old", "dd"): 1}


def test_timestamps_stay_unique_per_series_across_reopening_after_purge(tmp_path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    # A burst pushes this series' timestamps ahead of the clock...
    box.append([reading(float(i), ts=1_700_000_000.0) for i in range(100)])
    box.commit()
    box.confirm("vm", box.fetch("vm", 1000)[-1].id)
    box.purge()
    box.close()
    # ...and after a restart, with the rows gone, a reading at the same clock time
    # must not reuse a millisecond the burst took.
    box = Outbox(tmp_path)
    box.append([reading(7.0, ts=1_700_000_000.0)])
    box.commit()
    (row,) = box.fetch("vm", 10)
    assert row.ts_ms == 1_700_000_000_000 + 100
