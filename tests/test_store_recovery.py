"""A damaged store is moved aside, what can be read is salvaged into a fresh one,
and the event and the readings it may have cost are recorded: nobody deletes a file."""

import json
import sqlite3
from pathlib import Path

from gateway.model import Reading
from gateway.store.outbox import DB_NAME, Outbox
from gateway.store.recovery import check, check_and_recover

T0 = 1_790_000_000.0


def make_store(folder: Path, n: int = 50_000) -> Path:
    box = Outbox(folder)
    box.register_sinks(["vm"])
    box.append([Reading("plug.power", float(i), T0 + i, "gauge", "W", {"device": "p1"})
                for i in range(n)])
    box.commit()
    box.confirm("vm", 1000)  # vm has the first thousand
    box.close()  # checkpoints the WAL into the file
    return folder / DB_NAME


def damage(path: Path, page: int, pages: int = 3) -> None:
    """Overwrite whole pages in the middle of the file, as a failing SD card might."""
    with open(path, "r+b") as f:
        f.seek(page * 4096)
        f.write(b"\xde\xad\xbe\xef" * 1024 * pages)


def test_a_sound_store_passes_the_check(tmp_path: Path):
    make_store(tmp_path)
    assert check(tmp_path / DB_NAME) == []
    assert check_and_recover(tmp_path) is None


def test_damaged_pages_are_moved_aside_and_the_rest_salvaged(tmp_path: Path):
    path = make_store(tmp_path)
    pages = path.stat().st_size // 4096
    damage(path, pages // 2)
    assert check(path), "the damage should be found"
    salvage = check_and_recover(tmp_path)
    assert salvage is not None
    moved = Path(salvage.moved_to)
    assert moved.exists() and moved.name.startswith("gateway.db.corrupt-")
    assert check(path) == []  # the new store is sound
    box = Outbox(tmp_path)
    values = [r.value for r in box.rows_after(0, 10**6)]
    assert 49_000 < len(values) < 50_000  # all but the damaged pages survived
    assert values == sorted(values)
    assert box.cursor("vm") == 1000  # the sink keeps its place: no resending everything
    # the readings that could not be read are counted as lost, at most as many as missing
    lost = box.losses_by_priority()[("corrupt", "vm", "")]
    missing_after_cursor = 49_000 - sum(1 for v in values if v >= 1000)
    assert missing_after_cursor <= lost <= missing_after_cursor + 10
    ((_, kind, detail),) = box.events()
    assert kind == "recovered" and json.loads(detail)["moved_to"] == str(moved)
    # timestamps stay unique per series: a reading after recovery gets a later one
    box.append([Reading("plug.power", 1.0, T0, "gauge", "W", {"device": "p1"})])
    box.commit()
    assert box.rows_after(0, 10**6)[-1].ts_ms > max(int(v) for v in values) + T0 * 1000 - 1


def test_a_file_that_is_not_a_database_is_replaced(tmp_path: Path):
    path = make_store(tmp_path, 100)
    path.write_bytes(b"this is not an SQLite file at all" * 1000)
    salvage = check_and_recover(tmp_path)
    assert salvage is not None and salvage.readings == 0
    assert Path(salvage.moved_to).read_bytes().startswith(b"this is not")
    box = Outbox(tmp_path)
    assert box.stored_rows() == 0
    assert box.events()[0][1] == "recovered"


def test_the_damaged_file_is_kept_as_it_was(tmp_path: Path):
    path = make_store(tmp_path, 5000)
    damage(path, 2, 1)
    before = path.read_bytes()
    salvage = check_and_recover(tmp_path)
    assert salvage is not None
    assert Path(salvage.moved_to).read_bytes() == before
    assert sqlite3.connect(path).execute("PRAGMA quick_check").fetchone() == ("ok",)
