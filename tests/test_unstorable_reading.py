"""A reading the store cannot hold is taken out of its batch; the batch's other readings
are committed and its messages acknowledged.

The decoder never makes such a reading (tests/test_decoder_fuzz.py), but other
parts hand readings to ingest too (the gateway's own figures, through
`submit_readings`). Text with a lone surrogate used to make the store's append
raise UnicodeEncodeError, which ended the ingest thread; a NaN failed the NOT
NULL constraint, and the batch was retried for ever, nothing acknowledged.
Here both arrive in one batch with a device's good message and a good reading,
on a real store: those are kept, the two are counted and logged.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from gateway.config.schema import DeviceConfig
from gateway.health.stats import Stats
from gateway.ingest.pipeline import Ingest
from gateway.model import RawMessage, Reading
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary
from gateway.store.outbox import Outbox


def _stored(data: Path) -> list[tuple[str, float, dict[str, str]]]:
    outbox = Outbox(data)
    try:
        return sorted((r.info.metric, r.value, r.info.tags) for r in outbox.rows_after(0, 1000))
    finally:
        outbox.close()


def test_readings_the_store_cannot_hold_do_not_fail_their_batch(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    device = DeviceConfig(id="plug1", profile="tasmota", params={"topic": "plug1"})
    stats = Stats()
    # A long commit interval, so everything below lands in one batch.
    ingest = Ingest(lambda: Outbox(tmp_path), Decoder([device], ProfileLibrary.builtin(), "hall"),
                    stats, commit_interval=1.0)
    ingest.start()
    now = time.time()
    acked: list[str] = []
    ingest.submit(RawMessage("tele/plug1/SENSOR", b'{"ENERGY":{"Power":38}}', now),
                  lambda: acked.append("first"))
    ingest.submit_readings([
        Reading("gateway.test_good", 1.0, now, tags={"device": "hall"}),
        Reading("gateway.test_text", 2.0, now, tags={"device": "hall", "note": "a\udc80b"}),
        Reading("gateway.test_nan", float("nan"), now, tags={"device": "hall"}),
    ])
    ingest.submit(RawMessage("tele/plug1/SENSOR", b'{"ENERGY":{"Power":39}}', now),
                  lambda: acked.append("second"))
    deadline = time.monotonic() + 10
    while len(acked) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    ingest.stop()

    assert acked == ["first", "second"]
    assert ingest.stopped.is_set() and ingest.store_ok.is_set()
    stored = _stored(tmp_path)
    assert [(m, v) for m, v, _ in stored] == [("gateway.test_good", 1.0), ("plug.power", 38.0),
                                              ("plug.power", 39.0)], stored
    assert stats.get("gateway.readings_unstorable") == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert "refused 2 reading(s)" in errors[0] and "gateway.test_text" in errors[0]
    assert "other 3 are committed" in errors[0]
