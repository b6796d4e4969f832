"""The program fixtures are real and behave as the gateway's tests rely on."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
from programs.mosquitto import Mosquitto
from programs.ports import free_port, port_accepts
from programs.victoria import VictoriaMetrics


class _Client:
    """A paho 2.x client on a background loop that collects the messages it gets."""

    def __init__(self, broker: Mosquitto, client_id: str = "", clean_session: bool = True) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.session_present: bool | None = None
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.connected.wait(5), "no CONNACK"

    def _on_connect(self, _client, _userdata, flags, reason_code, _properties) -> None:
        assert not reason_code.is_failure, reason_code
        self.session_present = flags.session_present
        self.connected.set()

    def subscribe_qos1(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_args: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(5), "no SUBACK"

    def publish_qos1(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published(), "no PUBACK"

    def next_message(self, timeout: float = 5.0) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it has exited all the same
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


# -- ports ---------------------------------------------------------------------------------
def test_free_port_is_free_and_on_loopback():
    port = free_port()
    assert 1024 <= port <= 65535
    assert not port_accepts("127.0.0.1", port)


# -- Mosquitto -----------------------------------------------------------------------------
def test_mosquitto_delivers_qos1_publish_to_subscriber(mosquitto: Mosquitto):
    sub = _Client(mosquitto)
    pub = _Client(mosquitto)
    try:
        sub.subscribe_qos1("tele/plug1/SENSOR")
        pub.publish_qos1("tele/plug1/SENSOR", b'{"ENERGY":{"Power":5}}')
        msg = sub.next_message()
        assert (msg.topic, msg.payload, msg.qos) == (
            "tele/plug1/SENSOR",
            b'{"ENERGY":{"Power":5}}',
            1,
        )
    finally:
        sub.close()
        pub.close()


def test_mosquitto_keeps_queued_message_for_persistent_session_across_restart(mosquitto: Mosquitto):
    gw = _Client(mosquitto, client_id="gateway-test", clean_session=False)
    gw.subscribe_qos1("tele/#")
    gw.close()  # offline now: the broker must queue QoS 1 messages for this session

    pub = _Client(mosquitto)
    pub.publish_qos1("tele/plug1/SENSOR", b"while-offline")
    pub.close()

    port, pid = mosquitto.port, mosquitto.pid
    mosquitto.restart()
    assert mosquitto.port == port and mosquitto.pid != pid
    assert "Saving in-memory database" in mosquitto.log_text()

    gw = _Client(mosquitto, client_id="gateway-test", clean_session=False)
    try:
        assert gw.session_present is True
        msg = gw.next_message()  # no new SUBSCRIBE: the session's subscription survived
        assert (msg.topic, msg.payload, msg.qos) == ("tele/plug1/SENSOR", b"while-offline", 1)
    finally:
        gw.close()


def test_mosquitto_kill_keeps_what_autosave_wrote(mosquitto: Mosquitto):
    gw = _Client(mosquitto, client_id="gateway-kill", clean_session=False)
    gw.subscribe_qos1("tele/#")
    gw.close()
    pub = _Client(mosquitto)
    pub.publish_qos1("tele/x", b"saved")
    pub.close()
    time.sleep(mosquitto.autosave_interval + 1.5)  # let an autosave happen
    mosquitto.kill()  # SIGKILL: no save at exit
    mosquitto.start()
    gw = _Client(mosquitto, client_id="gateway-kill", clean_session=False)
    try:
        assert gw.next_message().payload == b"saved"
    finally:
        gw.close()


def test_mosquitto_config_holds_a_burst_for_a_slow_subscriber(tmp_path):
    broker = Mosquitto(tmp_path)
    text = broker.config_text()
    assert "max_queued_messages 1000000" in text
    assert "max_queued_bytes 0" in text
    assert f"listener {broker.port} 127.0.0.1" in text


def test_stopped_and_killed_programs_leave_no_process(tmp_path):
    broker = Mosquitto(tmp_path / "m")
    vm = VictoriaMetrics(tmp_path / "v")
    with broker, vm:
        pids = [broker.pid, vm.pid]
        assert all(_alive(pid) for pid in pids)
        broker.kill()
    assert broker.pid is not None and not _alive(pids[0])
    assert not _alive(pids[1])
    assert not port_accepts(broker.host, broker.port)
    assert not port_accepts(vm.host, vm.port)


# -- VictoriaMetrics -----------------------------------------------------------------------
def test_victoria_stores_influx_line_with_labels_and_value(victoria: VictoriaMetrics):
    status = victoria.write_influx("plug,device=a,gateway=g power=5 1700000000000", precision="ms")
    assert status == 204
    assert victoria.export('{__name__="plug_power"}') == [
        {
            "metric": {"__name__": "plug_power", "device": "a", "gateway": "g"},
            "values": [5],
            "timestamps": [1700000000000],
        }
    ]
    assert victoria.series("plug_power") == [
        {"__name__": "plug_power", "device": "a", "gateway": "g"}
    ]
    assert victoria.sample_count("plug_power") == 1


def test_victoria_sees_data_written_this_very_second(victoria: VictoriaMetrics):
    now_ms = int(time.time() * 1000)
    assert victoria.write_influx(f"plug,device=a power=1 {now_ms}", precision="ms") == 204
    assert victoria.sample_count("plug_power") == 1


def test_victoria_keeps_two_samples_at_the_same_millisecond(victoria: VictoriaMetrics):
    lines = "plug,device=a power=1 1700000000001\nplug,device=a power=2 1700000000001\n"
    assert victoria.write_influx(lines, precision="ms") == 204
    [series] = victoria.export("plug_power")
    assert sorted(series["values"]) == [1, 2]
    assert series["timestamps"] == [1700000000001, 1700000000001]


def test_victoria_guesses_timestamp_unit_without_precision(victoria: VictoriaMetrics):
    victoria.write_influx("s,device=a v=1 1700000000\nns,device=a v=1 1700000000000000000")
    assert victoria.export("s_v")[0]["timestamps"] == [1700000000000]
    assert victoria.export("ns_v")[0]["timestamps"] == [1700000000000]


def test_victoria_answers_204_to_malformed_lines_and_counts_them(victoria: VictoriaMetrics):
    assert victoria.write_influx("not a line\nok,device=a v=1 1700000000000", precision="ms") == 204
    assert victoria.sample_count("ok_v") == 1
    assert victoria.self_metrics()['vm_rows_invalid_total{type="influx"}'] == 1


def test_victoria_keeps_data_across_restart(victoria: VictoriaMetrics):
    victoria.write_influx("plug,device=a power=5 1700000000000", precision="ms")
    port = victoria.port
    victoria.restart()  # SIGTERM: VM writes everything out before exiting
    assert victoria.port == port
    assert victoria.sample_count("plug_power") == 1


def test_victoria_kill_loses_only_the_last_seconds(victoria: VictoriaMetrics):
    """A 204 from VM is not durability: data reaches disk about every 5 s (1.79)."""
    victoria.write_influx("plug,device=a power=5 1700000000000", precision="ms")
    victoria.flush()
    time.sleep(VictoriaMetrics.DISK_FLUSH_SECONDS)
    victoria.write_influx("plug,device=a power=6 1700000001000", precision="ms")
    victoria.flush()  # searchable now, but (most likely) not yet on disk
    victoria.kill()
    victoria.start()
    # The first sample must survive; the second usually does not (unless VM's
    # periodic write-out fell into the last few milliseconds).
    assert 5 in victoria.export("plug_power")[0]["values"]


def test_victoria_accepts_datadog_v1_but_not_v2(victoria: VictoriaMetrics):
    def post(path: str, body: dict) -> int:
        req = urllib.request.Request(
            victoria.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as err:
            return err.code

    v1 = {
        "series": [
            {
                "metric": "plug.power",
                "points": [[1700000000, 5]],
                "host": "pi",
                "tags": ["device:a"],
            }
        ]
    }
    assert post("/datadog/api/v1/series", v1) == 202
    assert victoria.series('{__name__="plug.power"}') == [
        {"__name__": "plug.power", "host": "pi", "device": "a"}
    ]
    v2 = {"series": [{"metric": "x", "points": [{"timestamp": 1700000000, "value": 1}]}]}
    assert post("/datadog/api/v2/series", v2) == 400
