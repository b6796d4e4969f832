"""A request Datadog refuses as too large (413), or one that would be, is split.

Datadog takes at most 500 KB compressed (5 MB uncompressed) per request: the
gateway splits a batch on a 413 and before sending one over the limit, and
every point still arrives.
"""

from __future__ import annotations

import json
import random
import string

from paho.mqtt import publish
from programs.ports import wait_until

DD_KEY = "test-dd-api-key"
MAX_COMPRESSED = 512_000
MAX_DECOMPRESSED = 5_242_880


def _gateway(make_gateway, mosquitto, intake, devices, **mqtt):
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 3600},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, **mqtt},
        "devices": devices,
        "sinks": [{"name": "dd", "type": "datadog", "api_key": DD_KEY, "url": intake.url,
                   "backoff_min": 0.2, "backoff_max": 1}],
    })
    gw.start()
    # The startup self-metrics go first; the test's own readings come after.
    assert gw.wait_for(lambda s: s["sinks"][0]["delivered"] > 0
                       and s["sinks"][0]["state"] == "idle", 20)
    return gw


def _within_limits(intake) -> None:
    for r in intake.requests:
        assert r.raw_size <= MAX_COMPRESSED, r
        assert r.decompressed_size is None or r.decompressed_size <= MAX_DECOMPRESSED, r


def test_a_413_answer_splits_the_batch_and_everything_arrives(mosquitto, datadog_intake,
                                                              make_gateway):
    gw = _gateway(make_gateway, mosquitto, datadog_intake, [
        {"id": "urn", "profile": "tasmota", "topic": "kitchen_urn"}])
    before = len(datadog_intake.requests)
    datadog_intake.fail_next(413)
    publish.single("tele/kitchen_urn/SENSOR", json.dumps({"ENERGY": {
        "Power": 2400, "ApparentPower": 2410, "ReactivePower": 20, "Factor": 0.99,
        "Voltage": 239, "Current": 10.1, "Total": 88.5, "Today": 1.25, "Yesterday": 2.5}}),
        qos=1, hostname=mosquitto.host, port=mosquitto.port)
    metrics = ["plug.power", "plug.apparent_power", "plug.reactive_power", "plug.power_factor",
               "plug.voltage", "plug.current", "plug.energy_total", "plug.energy_today",
               "plug.energy_yesterday"]
    assert wait_until(lambda: all(datadog_intake.points(m) for m in metrics), 20)
    assert datadog_intake.points("plug.power")[0][1] == 2400

    answers = [r.status for r in datadog_intake.requests[before:]]
    assert answers[0] == 413
    assert answers[1:].count(202) >= 2, answers  # the batch went again, in halves
    assert set(answers[1:]) == {202}
    _within_limits(datadog_intake)
    sink = gw.sink("dd")
    assert sink["dropped"] == {}  # nothing dead-lettered because of the 413
    assert gw.stop() == 0


def test_a_batch_over_500_kib_compressed_goes_in_several_requests(mosquitto, datadog_intake,
                                                                   make_gateway):
    # One message with thousands of fields of hard-to-compress names: its readings
    # are committed together, so the sink gets them as one batch of ~5,500 series,
    # about 1.5 MB of JSON that deflate cannot bring under 500 KB.
    gw = _gateway(make_gateway, mosquitto, datadog_intake, [
        {"id": "bulk", "profile": "generic-json", "topic": "hall/bulk",
         "fields": {"*": "bulk.{key}"}}], max_payload_bytes=4_000_000,
        max_readings_per_message=10_000)  # far above a real device's dozens, on purpose
    rng = random.Random(7)
    letters = string.ascii_lowercase + string.digits
    keys = {"".join(rng.choices(letters, k=150)) for _ in range(5500)}
    payload = json.dumps({k: round(rng.uniform(-1e6, 1e6), 6) for k in keys})
    before = len(datadog_intake.requests)
    publish.single("hall/bulk", payload, qos=1, hostname=mosquitto.host, port=mosquitto.port)

    assert wait_until(lambda: datadog_intake.stored_point_count() >= len(keys), 40), \
        (datadog_intake.stored_point_count(), gw.sink("dd"))
    stored = {s["metric"] for s in datadog_intake.series()}
    assert {f"bulk.{k}" for k in keys} <= stored

    mine = datadog_intake.requests[before:]
    assert len(mine) >= 2
    assert {r.status for r in mine} == {202}  # split before sending, not after a 413
    assert sum(r.series for r in mine) >= len(keys)
    assert max(r.raw_size for r in mine) > MAX_COMPRESSED / 4  # requests were big ones
    _within_limits(datadog_intake)
    assert gw.sink("dd")["dropped"] == {}
    assert gw.stop() == 0
