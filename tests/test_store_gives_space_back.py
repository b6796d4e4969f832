"""Once a backlog has gone, the store file hands its free space back to the disk by
itself; and a file bigger than its budget is cut down to it."""

from pathlib import Path

from gateway.clock import ManualClock
from gateway.config.schema import StoreSection
from gateway.config.validate import Bytes
from gateway.model import Reading
from gateway.store.housekeeping import Housekeeper
from gateway.store.inflight import InFlight
from gateway.store.outbox import Outbox

T0 = 1_790_000_000.0


def backlog(box: Outbox, n: int) -> None:
    for start in range(0, n, 100_000):
        box.append([Reading("plug.power", float(i), T0 + i, "gauge", "W", {"device": "p"})
                    for i in range(start, min(n, start + 100_000))])
        box.commit()


def on_disk(box: Outbox) -> int:
    wal = Path(f"{box.path}-wal")
    return box.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def test_a_drained_backlog_gives_its_space_back(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    backlog(box, 1_200_000)  # about 25 MB
    box.confirm("vm", 10**9)  # delivered
    big = on_disk(box)
    hk = Housekeeper(box.conn, box.path, StoreSection(min_free_bytes=Bytes(0)), InFlight(),
                     ManualClock(T0))
    for _ in range(20):
        hk.run(box.purge)
    assert big > 20e6
    assert on_disk(box) < 10e6, on_disk(box)  # a few MB of free pages and WAL kept for reuse


def test_a_file_over_its_budget_shrinks_to_it(tmp_path: Path):
    box = Outbox(tmp_path)
    box.register_sinks(["vm"])
    backlog(box, 600_000)  # about 13 MB, waiting for vm
    budget = 6 * 1024 * 1024
    config = StoreSection(max_bytes=Bytes(budget), min_free_bytes=Bytes(0), compaction=())
    hk = Housekeeper(box.conn, box.path, config, InFlight(), ManualClock(T0 + 600_000))
    for _ in range(50):
        if not hk.run(box.purge, seconds=5).busy:
            break
    hk.run(box.purge)
    assert on_disk(box) <= budget, on_disk(box)
    assert box.losses_by_priority()[("evicted_size", "vm", "normal")] > 0
