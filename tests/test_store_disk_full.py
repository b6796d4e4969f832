"""When the store cannot grow (a full disk; here SQLite's page limit), ingest stops
acknowledging, holds what it has, keeps the latest values current, says why, and
commits everything by itself once there is room again."""

import json
import threading
import time
from pathlib import Path

from gateway.config.schema import DeviceConfig, StoreSection
from gateway.config.validate import Bytes
from gateway.health.stats import Stats
from gateway.ingest.pipeline import Ingest
from gateway.model import RawMessage
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary
from gateway.state.latest import LatestValues
from gateway.store.outbox import Outbox


class Acks:
    """Records which messages were acknowledged (as PUBACK would tell the broker)."""

    def __init__(self) -> None:
        self.done: list[int] = []
        self.lock = threading.Lock()

    def ack(self, n: int):
        def call() -> None:
            with self.lock:
                self.done.append(n)
        return call


def payload(n: int) -> bytes:
    return json.dumps({"ENERGY": {"Power": n, "Voltage": 230, "Total": n / 10}}).encode()


def wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_full_store_holds_messages_unacknowledged_and_recovers(tmp_path: Path):
    boxes: list[Outbox] = []

    def outbox() -> Outbox:
        box = Outbox(tmp_path)
        box.conn.execute("PRAGMA max_page_count = 60")  # about 240 KB: the disk is full
        boxes.append(box)
        return box

    setup = Outbox(tmp_path)
    setup.register_sinks(["vm"])
    setup.close()
    decoder = Decoder([DeviceConfig(id="defib", profile="tasmota", params={"topic": "defib"})],
                      ProfileLibrary.builtin(), "hall")
    stats = Stats()
    config = StoreSection(min_free_bytes=Bytes(0))
    ingest = Ingest(outbox, decoder, stats, commit_interval=0.05, window=200, store=config)
    latest = LatestValues(decoder.base_tags)
    ingest.fanout.add(latest)
    ingest.start()
    acks = Acks()
    total = 12_000  # about 36,000 readings: far more than 60 pages hold
    taken: list[int] = []

    def publish() -> None:
        # As the MQTT network thread does: submit blocks while the window is full.
        for n in range(total):
            ingest.submit(RawMessage("tele/defib/SENSOR", payload(n), time.time()), acks.ack(n))
            taken.append(n)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        assert wait(lambda: ingest.store_fault == "disk_full", 30), "the store should fill"
        assert not ingest.store_ok.is_set()
        assert stats.get("gateway.store_writable") == 0
        time.sleep(1.5)
        acked_while_full = len(acks.done)
        held = len(taken) - acked_while_full
        assert 0 < held <= 200  # the window: the broker keeps everything beyond it
        time.sleep(1.5)
        assert len(acks.done) == acked_while_full, "nothing is acknowledged while full"
        # The latest values show accepted readings only: what ingest holds unacknowledged
        # is not there yet (the broker may send it again, or never, if the store is lost).
        shown = latest.snapshot()["defib"]["values"]["plug.power"][0]
        assert shown < taken[-1] and shown <= acked_while_full, (shown, acked_while_full)
        # Space returns: everything held is committed and acknowledged, nothing lost.
        for box in boxes:
            box.conn.execute("PRAGMA max_page_count = 1000000")
        publisher.join(60)
        assert wait(lambda: len(acks.done) == total, 30), (len(acks.done), total)
        assert ingest.store_ok.is_set() and ingest.store_fault == ""
        assert latest.snapshot()["defib"]["values"]["plug.power"][0] == taken[-1]
    finally:
        ingest.stop()
    check = Outbox(tmp_path)
    check.register_sinks(["vm"])
    powers = sorted(r.value for r in check.fetch("vm", 10**6) if r.info.metric == "plug.power")
    assert powers == [float(n) for n in range(total)]
