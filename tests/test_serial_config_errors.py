"""A serial device's config mistakes are named by `gateway check` with their key path:
a device naming a source that is not a serial port, and a port's own bad settings."""

from __future__ import annotations

import pytest

from gateway.config.load import parse_config
from gateway.config.validate import ConfigError


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "/etc/edge-gateway/gateway.yaml")
    return str(caught.value)


def test_a_gps_naming_a_source_that_is_not_configured():
    message = problems("gateway: {name: van}\n"
                       "sources: [{name: gps, type: serial, port: /dev/ttyACM0}]\n"
                       "devices: [{id: van-gps, profile: nmea, source: gsp}]\n")
    assert "devices[0].source" in message, message
    assert "'gsp' is not a source of type serial" in message and "configured: gps" in message


def test_a_ports_settings_are_checked():
    message = problems("gateway: {name: van}\n"
                       "sources: [{name: gps, type: serial, port: '', baudrate: 0, "
                       "encoding: klingon, max_line_bytes: 4}]\n")
    for key in ("sources[0].port", "sources[0].baudrate", "sources[0].encoding",
                "sources[0].max_line_bytes"):
        assert key in message, (key, message)
    assert "'klingon' is not a text encoding" in message


def test_a_sound_serial_config_loads():
    config = parse_config("gateway: {name: van}\n"
                          "sources: [{name: gps, type: serial, port: 'socket://10.0.0.5:4000',"
                          " baudrate: 4800, max_line_bytes: 1KiB, retry_max: 1m}]\n"
                          "devices: [{id: van-gps, profile: nmea, source: gps}]\n")
    (source,) = config.sources
    assert (source.port, source.baudrate, source.max_line_bytes, source.retry_max) == \
        ("socket://10.0.0.5:4000", 4800, 1024, 60.0)
