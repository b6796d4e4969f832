"""A row leaves the store only when every sink has confirmed it; cursors survive reopening.

These walk the store as forwarders do: `cursor()` once, then `rows_after()` a
position the forwarder keeps in memory, `confirm()` to save it now and then,
and `record()` for a batch with losses (dead letters, drops) and its cursor in
one transaction.
"""

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
    vm = box.rows_after(box.cursor("vm"), 100)
    assert [r.value for r in vm] == [float(i) for i in range(10)]
    box.confirm("vm", vm[-1].id)
    box.purge()
    assert box.stored_rows() == 10  # dd has not confirmed
    assert box.rows_after(box.cursor("vm"), 100) == []
    dd = box.rows_after(box.cursor("dd"), 4)
    box.confirm("dd", dd[-1].id)
    box.purge()
    assert box.stored_rows() == 6
    assert [r.value for r in box.rows_after(box.cursor("dd"), 100)] == [
        float(i) for i in range(4, 10)]


def test_a_position_not_yet_saved_is_sent_again_after_a_restart(tmp_path):
    # The forwarder moves on in memory and saves its cursor every few seconds: a crash
    # in between sends the unsaved stretch again (at least once), never skips it.
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    fill(box, 6)
    saved = box.cursor("vm")
    first = box.rows_after(saved, 2)
    box.confirm("vm", first[-1].id)  # saved
    position = box.rows_after(first[-1].id, 2)[-1].id  # sent, not saved: then a crash
    assert position > box.cursor("vm")
    box.close()
    again = Outbox(tmp_path)
    again.register_sinks(["vm"])
    assert [r.value for r in again.rows_after(again.cursor("vm"), 100)] == [2.0, 3.0, 4.0, 5.0]


def test_a_batch_with_losses_keeps_them_and_moves_the_cursor_in_one_step(tmp_path):
    box = Outbox(tmp_path)
    box.register_sinks(["dd"])
    fill(box, 4)
    rows = box.rows_after(box.cursor("dd"), 4)
    box.record("dd", {"rejected_400": [rows[1]]}, {"too_old": 1}, rows[-1].id)
    assert box.cursor("dd") == rows[-1].id
    assert box.dead_letter_counts() == {("dd", "rejected_400"): 1}
    box.purge()
    assert box.stored_rows() == 0  # confirmed by every sink; the refused one is kept apart


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


def test_a_running_backlog_count_agrees_with_counting_every_row(tmp_path):
    # Kept running (each refresh counts only what changed), the backlog must match a
    # full count after appends, a forwarder moving on, and housekeeping evicting rows.
    from gateway.store.inflight import InFlight

    box = Outbox(tmp_path)
    box.register_sinks(["vm", "dd"])
    inflight = InFlight()

    def check(positions):
        kept = {b.sink: b.rows for b in box.backlogs(positions, inflight.reshaped)}
        full = {b.sink: b.rows for b in Outbox(tmp_path).backlogs(positions)}
        assert kept == full, (kept, full)
        return kept

    fill(box, 10)
    assert check({}) == {"vm": 10, "dd": 10}
    first = box.rows_after(0, 100)[0].id
    assert check({"vm": first + 3}) == {"vm": 6, "dd": 10}
    fill(box, 5, start=10)
    assert check({"vm": first + 12}) == {"vm": 2, "dd": 15}
    # Housekeeping deletes waiting rows (say, evicted for space) and says so.
    inflight.reshaped += 1  # about to delete: odd, so nothing is kept meanwhile
    box.conn.execute("DELETE FROM readings_normal WHERE id IN (?, ?)", (first + 13, first + 1))
    assert check({"vm": first + 12}) == {"vm": 1, "dd": 13}
    inflight.reshaped += 1  # done
    assert check({"vm": first + 12}) == {"vm": 1, "dd": 13}
    fill(box, 3, start=20)
    assert check({"vm": first + 20, "dd": first + 2}) == {"vm": 0, "dd": 14}
