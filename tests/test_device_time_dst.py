"""A Tasmota plug's local `Time` across the daylight-saving changes of its time zone.

Europe/London, 2026: on 29 March the clocks go from 01:00 GMT to 02:00 BST, so
01:30 never happens; on 25 October they go back from 02:00 BST to 01:00 GMT,
so 01:30 happens twice. The rule (gateway/profiles/devicetime.py): of the
instants a local time can mean, the latest one not after its arrival (plus
gateway.device_time.max_ahead). Live messages are therefore always read right;
one queued during the first 01:30 and delivered after the second is read as
the second (an hour late), which is the rule's known limit, asserted here too.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.config.schema import DeviceConfig
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary

PLUG = DeviceConfig(id="plug", profile="tasmota", params={"topic": "plug"},
                    timezone="Europe/London")
DECODER = Decoder([PLUG], ProfileLibrary.builtin(), "hall")


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def stamped(local_time: str, received_utc: str) -> float:
    """The time the plug's SENSOR reading gets, arriving at `received_utc`."""
    payload = json.dumps({"Time": local_time, "ENERGY": {"Power": 38}}).encode()
    decoded = DECODER.decode("tele/plug/SENSOR", payload, utc(received_utc))
    assert decoded.problems == [] and decoded.time_rejected is None, decoded
    (reading,) = decoded.readings
    return reading.ts


@pytest.mark.parametrize(("local", "received", "expected"), [
    # An ordinary day either side of each change.
    ("2026-10-25T00:59:59", "2026-10-24T23:59:59.8", "2026-10-24T23:59:59"),
    ("2026-10-25T02:00:00", "2026-10-25T02:00:00.4", "2026-10-25T02:00:00"),
    ("2026-03-29T00:59:59", "2026-03-29T00:59:59.5", "2026-03-29T00:59:59"),
    ("2026-03-29T02:00:00", "2026-03-29T01:00:00.5", "2026-03-29T01:00:00"),
    # 01:30 twice in October, each time sent live: the first is BST, the second GMT.
    ("2026-10-25T01:30:00", "2026-10-25T00:30:00.6", "2026-10-25T00:30:00"),
    ("2026-10-25T01:30:00", "2026-10-25T01:30:00.6", "2026-10-25T01:30:00"),
    # A clock a minute fast in the first pass is still read as the first.
    ("2026-10-25T01:30:00", "2026-10-25T00:29:00", "2026-10-25T00:30:00"),
    # Queued in the first 01:30 and delivered after the second: read as the second.
    ("2026-10-25T01:30:00", "2026-10-25T03:00:00", "2026-10-25T01:30:00"),
    # 01:30 in March does not exist: a plug still on GMT, and one that changed early.
    ("2026-03-29T01:30:00", "2026-03-29T01:30:01", "2026-03-29T01:30:00"),
    ("2026-03-29T01:30:00", "2026-03-29T00:30:01", "2026-03-29T00:30:00"),
])
def test_local_time_across_daylight_saving_changes(local: str, received: str,
                                                   expected: str) -> None:
    assert stamped(local, received) == utc(expected)
