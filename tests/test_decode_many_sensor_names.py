"""A Tasmota node whose sensor names keep changing (a bus that renumbers its probes,
or junk) is still read right after the decoder stops remembering new names: every
sensor's numbers arrive under <family>.<field> with the instance as a tag."""

from __future__ import annotations

import json
import time

from gateway.config.load import parse_config
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary


def test_names_past_what_the_decoder_remembers_are_still_read_right():
    config = parse_config("gateway: {name: hall}\ndevices:\n"
                          "  - {id: probes, profile: tasmota, topic: probes}\n")
    decoder = Decoder(config.devices, ProfileLibrary.builtin(), "hall")
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    for n in range(1, 1201):  # far more names than are remembered
        payload = {"Time": stamp, f"MAX{n}-{n}": {"Temperature": n / 10, f"Level{n}": n}}
        got = decoder.decode("tele/probes/SENSOR", json.dumps(payload).encode(), now)
        assert not got.problems, got.problems
        readings = {(r.metric, r.tags.get("sensor"), r.unit): r.value for r in got.readings}
        assert readings == {(f"max{n}.temperature", f"MAX{n}-{n}", "°C"): n / 10,
                            (f"max{n}.level{n}", f"MAX{n}-{n}", ""): float(n)}, readings
