"""What a serial line throws at the gateway besides readings: a boot banner, a sentence
whose checksum is wrong, bytes that are not text, a runaway line with no end in sight.
Each is counted by its reason; the good lines around them all arrive. And a port that
is not there at start, or that another program holds, is named in status while the
gateway runs its other sources, and read as soon as it can be.

Real programs: Mosquitto, a gateway process, a pseudo-terminal written here.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from firmware_sim.car import nmea
from firmware_sim.car.pty import PseudoTerminal


def config(mosquitto, port: Path, **source) -> dict:
    return {
        "gateway": {"name": "van-1", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "store": {"commit_interval": 0.1},
        "sources": [{"name": "gps", "type": "serial", "port": str(port), "retry_min": 0.2,
                     "retry_max": 0.5, **source}],
        "devices": [{"id": "van-gps", "profile": "nmea", "source": "gps"},
                    {"id": "plug1", "profile": "tasmota", "topic": "plug1"}],
        "sinks": [{"name": "local", "type": "file", "path": "readings.jsonl"}],
    }


def metrics(gw, name: str) -> list[float]:
    out = gw.data_dir / "readings.jsonl"
    if not out.exists():
        return []
    return [r["value"] for r in map(json.loads, out.read_text().splitlines())
            if r["metric"] == name]


def fix(lat: float) -> nmea.Fix:
    return nmea.Fix(lat, -0.43807, 31.0, 0.0, 0.0, 9, 0.9, 47.1)


def test_garbage_is_counted_by_reason_and_the_good_lines_arrive(mosquitto, make_gateway,
                                                                 tmp_path):
    port = PseudoTerminal(str(tmp_path / "gps"))
    try:
        gw = make_gateway(config(mosquitto, tmp_path / "gps", max_line_bytes=512))
        gw.start()
        assert gw.wait_for(lambda s: s["sources"][0]["ready"], 10)
        now = time.time()
        good = nmea.rmc("GN", now, fix(53.1))
        bad_sum = good[:-4] + b"00\r\n"  # the same sentence, checksum *00
        for chunk in (b"u-blox AG - www.u-blox.com\r\n",  # the boot banner
                      good,
                      bad_sum,
                      b"\xff\xfe\x80 noise\r\n",  # not text
                      b"$GPTXT," + b"A" * 2000,  # a runaway line: dropped up to its end
                      b"B" * 300 + b"\r\n",
                      nmea.rmc("GN", now + 1, fix(53.2))):
            assert port.write(chunk, wait=2.0) == len(chunk)
            time.sleep(0.05)
        assert gw.wait_for(lambda s: len(metrics(gw, "gps.latitude")) >= 2, 10)
        assert sorted(round(v, 4) for v in metrics(gw, "gps.latitude")) == [53.1, 53.2]
        status = gw.status()
        assert status["ingest"]["undecodable"] == {"bad_nmea": 1, "bad_checksum": 1,
                                                   "not_utf8": 1}, status["ingest"]
        assert status["sources"][0]["dropped"] == {"too_long": 1}, status["sources"][0]
        assert gw.wait_for_log("a line longer than 512 bytes was dropped", 5)
        text = gw.cli("status", "--config", str(gw.config_path)).stdout
        assert "lines dropped, too_long: 1" in text, text
    finally:
        port.close()


def test_a_port_missing_at_start_is_named_and_read_once_it_appears(mosquitto, make_gateway,
                                                                   publisher, tmp_path):
    link = tmp_path / "gps"
    gw = make_gateway(config(mosquitto, link))
    gw.start()
    status = gw.status()
    assert not status["sources"][0]["ready"]
    assert any(f"cannot open {link}" in h and "No such file" in h
               for h in status["health"]), status["health"]
    # The other source carries on meanwhile.
    publisher.publish("tele/plug1/SENSOR", '{"ENERGY":{"Power":40}}', qos=1).wait_for_publish(5)
    assert gw.wait_for(lambda s: metrics(gw, "plug.power") == [40.0], 10)
    port = PseudoTerminal(str(link))  # the adapter is plugged in
    try:
        assert gw.wait_for(lambda s: s["sources"][0]["ready"], 10), gw.status()
        port.write(nmea.rmc("GP", time.time(), fix(53.3)), wait=2.0)
        assert gw.wait_for(lambda s: metrics(gw, "gps.latitude") != [], 10)
        assert gw.status()["health"] == []
    finally:
        port.close()
    # Said once while it stayed missing, not once a retry.
    assert gw.log_text().count("cannot open") == 1, gw.log_text()


def test_a_port_another_program_holds_is_named_busy_and_read_once_free(mosquitto,
                                                                       make_gateway, tmp_path):
    import serial

    link = tmp_path / "gps"
    port = PseudoTerminal(str(link))
    other = serial.Serial(str(link), 9600, exclusive=True)  # gpsd, say, got there first
    try:
        gw = make_gateway(config(mosquitto, link))
        gw.start()
        assert gw.wait_for(lambda s: "cannot open" in s["sources"][0]["problem"], 10)
        problem = gw.status()["sources"][0]["problem"]
        assert str(link) in problem and "lock" in problem.lower(), problem
        other.close()  # the other program lets go
        assert gw.wait_for(lambda s: s["sources"][0]["ready"], 10), gw.status()
        port.write(nmea.rmc("GP", time.time(), fix(53.4)), wait=2.0)
        assert gw.wait_for(lambda s: metrics(gw, "gps.latitude") != [], 10)
    finally:
        other.close()
        port.close()
