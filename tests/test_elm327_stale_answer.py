"""An ELM327 still sending the answer to a request nobody waits for any more (the
gateway was restarted mid-request, or another program asked last) must not put the
gateway's set-up out of step: the source drains it and carries on, instead of
calling the adapter something that is not an ELM327.

Real programs: the simulator's ELM327 on a pseudo-terminal (at 9600 baud, so the
stale answer arrives after its asker has gone), pyserial.
"""

from __future__ import annotations

import time

import serial
from programs.van import Van

from gateway.clock import SYSTEM
from gateway.config.validate import Duration
from gateway.health.stats import Stats
from gateway.sources.elm327 import Elm327Source
from gateway.sources.elm327_config import Elm327SourceConfig


def test_a_stale_answer_does_not_put_the_set_up_out_of_step(tmp_path, caplog):
    van = Van(tmp_path, baud=9600)
    van.start()
    van.do("ignition-on")
    source = None
    try:
        other = serial.Serial(str(van.obd_link), 38400, timeout=1)
        other.write(b"ATE0\r")
        other.read_until(b">")
        other.write(b"0100\r")  # and gone before the answer comes
        other.close()
        got: list[str] = []
        config = Elm327SourceConfig(name="obd", port=str(van.obd_link),
                                    pids={"rpm": Duration(0.2)}, retry_min=Duration(0.2),
                                    trouble_codes_every=Duration(0), battery_every=Duration(0))
        source = Elm327Source(config, SYSTEM, Stats(),
                              lambda message, ack: got.append(message.origin))
        source.start()
        deadline = time.monotonic() + 15
        while "obd/7E8/010C" not in got and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "obd/7E8/010C" in got, (got, source.problem())
        assert source.opened == 1, "set up on the first try"
        assert "does not answer like an ELM327" not in caplog.text
    finally:
        if source is not None:
            source.stop()
        van.close()
