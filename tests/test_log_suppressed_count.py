"""Rate-limited warnings say how many were held back, even when no further message comes.

A flood of bad payloads logs one line per device and reason per interval. The
count of the rest used to ride on the next line of that kind, so a flood that
stopped was never told. Now the ingest thread tells it once the interval has
passed, and again when it stops. The ingest stage runs here on a real store
with the tasmota profile; the interval is shortened to one second.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest

from gateway.config.schema import DeviceConfig
from gateway.health.stats import Stats
from gateway.ingest.pipeline import Ingest
from gateway.model import RawMessage
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary
from gateway.store.outbox import Outbox

FLOOD = 50


def _ingest(data: Path, interval: float = 1.0) -> Ingest:
    device = DeviceConfig(id="plug1", profile="tasmota", params={"topic": "plug1"})
    decoder = Decoder([device], ProfileLibrary.builtin(), "hall")
    return Ingest(lambda: Outbox(data), decoder, Stats(), log_interval=interval)


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gateway.ingest"]


def test_a_flood_that_stops_is_told_with_its_count(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    ingest = _ingest(tmp_path)
    ingest.start()
    acked: list[int] = []
    for i in range(FLOOD):
        ingest.submit(RawMessage("tele/plug1/SENSOR", b"{not json " + str(i).encode(),
                                 time.time()), lambda i=i: acked.append(i))
    deadline = time.monotonic() + 10
    while len(acked) < FLOOD and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(acked) == FLOOD
    first = [line for line in _lines(caplog) if "bad_json" in line]
    assert len(first) == 1 and "{not json 0" in first[0], first

    # No message comes after the flood; within the interval and a round of the
    # ingest loop, one line tells how many were held back, and which was last.
    told: list[str] = []
    deadline = time.monotonic() + 6
    while not told and time.monotonic() < deadline:
        time.sleep(0.1)
        told = [line for line in _lines(caplog) if "more like this" in line]
    ingest.stop()
    assert len(told) == 1, told
    assert re.fullmatch(rf"{FLOOD - 1} more like this in the last [1-3]s, the last: bad_json: "
                        rf"payload on 'tele/plug1/SENSOR' is not JSON: \{{not json {FLOOD - 1}",
                        told[0]), told


def test_what_is_held_back_when_ingest_stops_is_told_then(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    ingest = _ingest(tmp_path, interval=3600.0)  # nothing would be told before the stop
    ingest.start()
    for i in range(3):
        ingest.submit(RawMessage("stat/plug1/POWER", f"MAYBE{i}".encode(), time.time()), None)
    ingest.stop()
    told = [line for line in _lines(caplog) if "more like this" in line]
    assert len(told) == 1 and told[0].startswith("2 more like this"), _lines(caplog)
    assert "'MAYBE2'" in told[0]
