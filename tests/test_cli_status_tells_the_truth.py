"""`gateway status` answers for this gateway only, knows it runs without asking its port,
and exits with a code a monitoring script can use: 0 healthy, 1 degraded, 3 not running,
4 cannot tell."""

from __future__ import annotations

import json

from paho.mqtt import publish
from programs.ports import free_port

SENSOR = '{"ENERGY":{"Power":38,"Voltage":238,"Total":512.417}}'


def plug_config(mosquitto, name: str, port: int, **http: object) -> dict:
    return {
        "gateway": {"name": name, "http": {"port": port, **http}},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [{"id": "defib-socket", "profile": "tasmota", "topic": f"{name}_defib"}],
        "sinks": [],
    }


def test_healthy_gateway_exits_0_and_shows_each_device_with_its_values(mosquitto,
                                                                        make_gateway):
    gw = make_gateway(plug_config(mosquitto, "hall", free_port()))
    gw.start()
    publish.single("tele/hall_defib/SENSOR", SENSOR, qos=1, hostname=mosquitto.host,
                   port=mosquitto.port)
    publish.single("tele/hall_defib/LWT", "Online", qos=1, hostname=mosquitto.host,
                   port=mosquitto.port)
    assert gw.wait_for(lambda s: s["devices"]["defib-socket"]["online"] is True, 20)
    shown = gw.cli("status", "--config", str(gw.config_path))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert shown.stdout.startswith("gateway hall: running, healthy\n")
    lines = shown.stdout.splitlines()
    i = lines.index("  devices:")
    assert lines[i + 1].split() [:2] == ["defib-socket", "online,"]
    assert "plug.power 38 W" in lines[i + 2] and "plug.energy_total 512.417 kWh" in lines[i + 2]


def test_another_gateway_on_the_configured_port_is_not_believed(mosquitto, make_gateway):
    port = free_port()
    other = make_gateway(plug_config(mosquitto, "other", port))
    other.start()
    hall = make_gateway(plug_config(mosquitto, "hall", port))
    # Not running: nothing is asked of the port, so the other's figures never show.
    shown = hall.cli("status", "--config", str(hall.config_path))
    assert shown.returncode == 3, shown.stdout
    assert shown.stdout.startswith("gateway hall: not running")
    assert "other" not in shown.stdout
    as_json = json.loads(hall.cli("status", "--json", "--config", str(hall.config_path)).stdout)
    assert as_json["running"] is False and as_json["exit_code"] == 3

    # Running, but its endpoint could not take the port: the other's answer is refused.
    hall.start(wait_connected=False)
    assert hall.wait_for_log("running:", 20), hall.log_text()
    shown = hall.cli("status", "--config", str(hall.config_path))
    assert shown.returncode == 1, shown.stdout
    assert shown.stdout.startswith("gateway hall: running, DEGRADED")
    assert "is from another gateway ('other'" in shown.stdout
    assert f"pid {hall.proc.pid}" in shown.stdout


def test_a_gateway_without_its_endpoint_is_still_known_to_run(mosquitto, make_gateway):
    gw = make_gateway(plug_config(mosquitto, "hall", free_port(), enabled=False))
    gw.start(wait_connected=False)
    assert gw.wait_for_log("running:", 20)
    shown = gw.cli("status", "--config", str(gw.config_path))
    assert shown.returncode == 1, shown.stdout
    assert shown.stdout.startswith("gateway hall: running, DEGRADED")
    assert f"pid {gw.proc.pid}" in shown.stdout
    assert "status endpoint is off (gateway.http.enabled: false)" in shown.stdout
    assert gw.stop() == 0
    assert gw.cli("status", "--config", str(gw.config_path)).returncode == 3


def test_a_config_that_cannot_be_read_exits_4(tmp_path):
    from programs.gateway import GatewayProcess

    gw = GatewayProcess(tmp_path, {"gateway": {"name": "hall", "data_dri": "x"}})
    shown = gw.cli("status", "--config", str(gw.config_path))
    assert shown.returncode == 4
    assert "gateway.data_dri: unknown key" in shown.stderr
