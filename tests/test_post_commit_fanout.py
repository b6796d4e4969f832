"""Committed readings go to every listener; a broken or slow one costs nobody else.

The ingest stage runs for real on a store on disk with the tasmota profile;
the listeners are what the latest-value state, the forwarders' wake-up and the
monitors will be.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from programs.ports import wait_until

from gateway.config.schema import DeviceConfig
from gateway.health.stats import Stats
from gateway.ingest.fanout import Buffered
from gateway.ingest.pipeline import Ingest
from gateway.model import RawMessage, Reading
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary
from gateway.store.outbox import Outbox


class Heard:
    def __init__(self) -> None:
        self.batches: list[list[float]] = []
        self.kept: list[list[float]] = []

    def committed(self, readings: Sequence[Reading]) -> None:
        self.batches.append([r.value for r in readings if r.metric == "plug.power"])

    def retained(self, readings: Sequence[Reading]) -> None:
        self.kept.append([r.value for r in readings if r.metric == "plug.power"])


class Broken:
    def committed(self, readings: Sequence[Reading]) -> None:
        raise RuntimeError("a bug in a listener")

    def retained(self, readings: Sequence[Reading]) -> None:
        raise RuntimeError("a bug in a listener")


class Slow:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.got = 0

    def committed(self, readings: Sequence[Reading]) -> None:
        self.release.wait(30)
        self.got += 1

    def retained(self, readings: Sequence[Reading]) -> None:
        pass


def _ingest(tmp_path, stats: Stats) -> Ingest:
    device = DeviceConfig(id="plug1", profile="tasmota", params={"topic": "plug1"})
    decoder = Decoder([device], ProfileLibrary.builtin(), "hall")
    return Ingest(lambda: Outbox(tmp_path), decoder, stats, commit_interval=0.05)


def _send(ingest: Ingest, power: int, acked: list[int], retained: bool = False) -> None:
    body = b'{"ENERGY": {"Power": %d}}' % power
    ingest.submit(RawMessage("tele/plug1/SENSOR", body, time.time(), retained),
                  lambda: acked.append(power))


def test_every_listener_hears_each_committed_batch_and_a_broken_one_stops_nothing(
        tmp_path, caplog):
    stats = Stats()
    ingest = _ingest(tmp_path, stats)
    first, second = Heard(), Heard()
    ingest.fanout.add(first)
    ingest.fanout.add(Broken())
    ingest.fanout.add(second)
    ingest.start()
    acked: list[int] = []
    try:
        _send(ingest, 7, acked, retained=True)
        for power in (1, 2, 3):
            _send(ingest, power, acked)
        assert wait_until(lambda: len(acked) == 4, 10)
        assert wait_until(lambda: sum(len(b) for b in second.batches) == 3, 10)
    finally:
        ingest.stop()
    for heard in (first, second):
        assert [v for b in heard.batches for v in b] == [1.0, 2.0, 3.0]
        assert heard.kept == [[7.0]]  # the retained copy: told apart, never stored
    assert stats.total("gateway.fanout_errors") >= 2
    assert "listener Broken failed" in caplog.text
    stored = Outbox(tmp_path)
    stored.register_sinks(["check"])
    assert sorted(r.value for r in stored.fetch("check", 100)
                  if r.info.metric == "plug.power") == [1.0, 2.0, 3.0]


def test_a_slow_listener_behind_a_buffer_drops_batches_counted_not_readings(tmp_path):
    stats = Stats()
    ingest = _ingest(tmp_path, stats)
    slow = Slow()
    buffered = Buffered(slow, "slow", stats, batches=2)
    ingest.fanout.add(buffered)
    ingest.start()
    acked: list[int] = []
    try:
        for power in range(1, 31):
            _send(ingest, power, acked)
            time.sleep(0.01)  # a few commits, not one
        # Ingest is not held up by the listener: everything is committed and acknowledged.
        assert wait_until(lambda: len(acked) == 30, 10), len(acked)
        assert stats.total("gateway.fanout_dropped") > 0
    finally:
        slow.release.set()
        ingest.stop()
        buffered.close()
    stored = Outbox(tmp_path)
    stored.register_sinks(["check"])
    assert len([r for r in stored.fetch("check", 100) if r.info.metric == "plug.power"]) == 30
