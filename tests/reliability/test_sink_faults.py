"""A destination that fails the way HTTP servers fail: the readings wait, then all arrive.

The gateway's influx sink writes to a real VictoriaMetrics through a proxy that,
while plugs publish, answers 500, 429 with Retry-After, 413 to large bodies, 403,
or never answers at all. What a user sees is checked: /status shows the sink
retrying (or held, for 403) with its last error and the backlog holding the
readings; a 429's Retry-After is waited out; a 413 splits the batch; a request
left hanging costs the sink its timeout and nothing else. Once the fault is
cleared (for 403: the gateway restarted, as its log asks) the backlog drains and
every test closes its books with the ledger: nothing missing, nothing dropped.

Two more 413 cases: a backlog split over a slow link, where splitting takes
longer than the sink's timeout, and a reading too large even on its own, which
goes to the dead-letter table (the one counted loss here) instead of holding up
everything behind it.
"""

from __future__ import annotations

import itertools
import random
import string
import time
from collections.abc import Iterator
from typing import Any

import pytest
from programs.faultproxy import FaultProxy
from programs.plugs import Fleet, SimulatedPlug, readings_in, wait_for_readings

from reliability.ledger import Ledger, fleet_ledger

PLUGS = [
    SimulatedPlug("defib-socket", "tasmota", tags={"room": "entrance"}),
    SimulatedPlug("stage-lights", "tasmota", channels=2),
    SimulatedPlug("heater-plug", "shelly", tags={"room": "main-hall"}),
    SimulatedPlug("distribution-board", "shelly", channels=4),
]
LABELS = {"gateway": "hall"}
MESSAGES = 2000
RATE = 300  # messages per second, all plugs together: about 7 s of publishing per fault


@pytest.fixture
def proxy(victoria) -> Iterator[FaultProxy]:
    """The fault proxy in front of the test's VictoriaMetrics."""
    with FaultProxy(victoria.url) as p:
        yield p


def vm_sink(status: dict[str, Any]) -> dict[str, Any]:
    return next(k for k in status["sinks"] if k["name"] == "vm")


def start_gateway(make_gateway, mosquitto, proxy: FaultProxy, timeout: float = 5,
                  plugs: list[SimulatedPlug] = PLUGS):
    """The gateway with one influx sink `vm` writing through the proxy, settled."""
    gw = make_gateway({
        "gateway": {"name": "hall", "self_metrics_interval": 1},
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port},
        "devices": [p.device_config() for p in plugs],
        "sinks": [{"name": "vm", "type": "influx", "url": proxy.url, "timeout": timeout,
                   "backoff_min": 0.5, "backoff_max": 2}],
    })
    gw.start()
    # Its start-up self-metrics go through before any fault is set.
    assert gw.wait_for(lambda s: vm_sink(s)["delivered"] > 0
                       and vm_sink(s)["state"] == "idle", 20), gw.status()
    return gw


def plug_readings(fleet: Fleet) -> int:
    """Readings in the messages the broker acknowledged so far."""
    return sum(fleet.expected(LABELS).values())


def assert_stored(gw, since: float, readings: int) -> None:
    """The gateway has stored (committed) `readings` more readings than `since`."""
    assert gw.wait_for(lambda s: s["ingest"]["stored"] - since >= readings, 15), \
        gw.status()["ingest"]


def assert_backlog_holds(gw, readings: int) -> dict[str, Any]:
    """/status (refreshed every 2 s) counts at least `readings` waiting for `vm`."""
    assert gw.wait_for(lambda s: (vm_sink(s)["backlog_rows"] or 0) >= readings, 15), (
        f"the backlog should hold the {readings} readings published during the fault: "
        f"{gw.sink('vm')}")
    return gw.sink("vm")


def assert_drained(gw, timeout: float = 40) -> None:
    """The backlog empties and the sink is healthy again, with no error shown."""
    assert gw.wait_for(lambda s: vm_sink(s)["backlog_rows"] == 0
                       and vm_sink(s)["state"] in ("ok", "idle")
                       and vm_sink(s)["last_error"] == "", timeout), gw.sink("vm")


def close_books(test: str, gw, victoria, fleet: Fleet,
                dropped: dict[str, int] | None = None) -> Ledger:
    """Published, accepted, delivered, duplicated, dropped: nothing missing beyond the
    counted drops, and no drops but `dropped`."""
    expected = fleet.expected(LABELS)
    # The backlog has drained by now: with readings dropped, stop waiting once nothing changes.
    got = wait_for_readings(victoria, expected, timeout=30, quiet=3 if dropped else None)
    book = fleet_ledger(test, fleet, got, gw, "vm", LABELS)
    book.check()
    assert book.dropped == (dropped or {}), book
    assert gw.sink("vm")["dropped"] == (dropped or {}), gw.sink("vm")
    assert gw.stop() == 0
    return book


def test_500_retries_with_backoff_then_delivers_everything(mosquitto, victoria, proxy,
                                                           make_gateway):
    gw = start_gateway(make_gateway, mosquitto, proxy)
    first = len(proxy.requests())
    proxy.fault("500")
    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(MESSAGES, rate=RATE)
        assert gw.wait_for(lambda s: vm_sink(s)["state"] == "retrying", 15), gw.sink("vm")
        delivered_at_fault = gw.sink("vm")["delivered"]
        fleet.wait(timeout=60)
        sink = assert_backlog_holds(gw, plug_readings(fleet))

        assert sink["state"] == "retrying", sink
        assert "HTTP 500" in sink["last_error"], sink
        assert sink["delivered"] == delivered_at_fault, sink
        assert sink["failures"] >= 3, sink  # several retries while the plugs published
        answers = proxy.answers(first)
        assert set(answers) == {500} and answers[500] >= 3, answers
        assert not readings_in(victoria), "nothing reaches VictoriaMetrics while it fails"

        proxy.clear()
        assert_drained(gw)
    close_books("500", gw, victoria, fleet)


def test_429_waits_as_long_as_retry_after_asks(mosquitto, victoria, proxy, make_gateway):
    gw = start_gateway(make_gateway, mosquitto, proxy)
    first = len(proxy.requests())
    # 3 s, longer than backoff_max (2 s): only the header can explain the pauses.
    proxy.fault("429", retry_after=3)
    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(MESSAGES, rate=RATE)
        assert gw.wait_for(lambda s: vm_sink(s)["state"] == "retrying", 15), gw.sink("vm")
        fleet.wait(timeout=60)
        sink = assert_backlog_holds(gw, plug_readings(fleet))
        assert proxy.wait_for_requests(3, timeout=15, since=first), proxy.requests()[first:]

        sink = gw.sink("vm")
        assert sink["state"] == "retrying", sink
        assert "HTTP 429" in sink["last_error"], sink
        assert not readings_in(victoria), "nothing reaches VictoriaMetrics while it refuses"

        proxy.clear()
        assert_drained(gw)
    mine = proxy.requests()[first:]
    limited = [r for r in mine if r.status == 429]
    assert len(limited) >= 3, mine
    gaps = [round(b.at - a.at, 3) for a, b in itertools.pairwise(mine) if a.status == 429]
    assert gaps and min(gaps) >= 3.0, f"a request came sooner than Retry-After: {gaps}"
    print(f"pauses after each 429 (Retry-After: 3): {gaps}")
    close_books("429", gw, victoria, fleet)


def test_413_splits_the_batch_and_every_reading_arrives(mosquitto, victoria, proxy,
                                                        make_gateway):
    gw = start_gateway(make_gateway, mosquitto, proxy)
    first = len(proxy.requests())
    # Far below a batch of this burst, well above one Tasmota message's readings.
    limit = 2048
    proxy.fault("413", max_body=limit)
    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(MESSAGES, rate=RATE)
        fleet.wait(timeout=60)
        expected = fleet.expected(LABELS)
        got = wait_for_readings(victoria, expected, timeout=40)
        assert not expected - got, "every reading arrives while the 413 limit holds"
        assert_drained(gw)

    mine = proxy.requests()[first:]
    answers = proxy.answers(first)
    assert answers[413] >= 1, answers  # batches over the limit were refused...
    assert set(answers) <= {204, 413}, answers
    written = [r for r in mine if r.status == 204]
    assert max(r.body_bytes for r in written) <= limit, "only bodies within the limit pass"
    assert answers[204] > answers[413], answers  # ...and went again in parts
    sink = gw.sink("vm")
    assert sink["failures"] == 0, sink  # a split is no failure: nothing waited on backoff
    print(f"413 fault, limit {limit} B: {answers[413]} refused, {answers[204]} written, "
          f"largest written body {max(r.body_bytes for r in written)} B")
    close_books("413", gw, victoria, fleet)


def test_403_holds_the_sink_keeps_the_readings_and_a_restart_delivers(mosquitto, victoria,
                                                                      proxy, make_gateway):
    gw = start_gateway(make_gateway, mosquitto, proxy)
    first = len(proxy.requests())
    proxy.fault("403")
    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(MESSAGES, rate=RATE)
        assert gw.wait_for(lambda s: vm_sink(s)["state"] == "held", 15), gw.sink("vm")
        fleet.wait(timeout=60)
        sink = assert_backlog_holds(gw, plug_readings(fleet))

        assert sink["state"] == "held", sink
        assert "HTTP 403" in sink["last_error"], sink
        assert sink["dropped"] == {}, sink
        # A refusal no retry will fix is not hammered: one request, then silence.
        assert proxy.answers(first) == {403: 1}, proxy.requests()[first:]
        held = [line for line in gw.log_text().splitlines()
                if "HELD" in line and "HTTP 403" in line]
        assert held and "restart the gateway" in held[0], gw.log_text()[-2000:]
        assert not readings_in(victoria)

        # The cause is fixed; the user restarts the gateway, as the log tells them to.
        proxy.clear()
        assert gw.stop() == 0
        gw.start()
        assert_drained(gw)
    close_books("403", gw, victoria, fleet)


def test_a_hanging_destination_costs_its_timeout_and_nothing_else(mosquitto, victoria, proxy,
                                                                  make_gateway):
    gw = start_gateway(make_gateway, mosquitto, proxy, timeout=2)
    first = len(proxy.requests())
    stored_at_fault = gw.status()["ingest"]["stored"]
    proxy.fault("hang")
    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(MESSAGES, rate=RATE)
        assert gw.wait_for(lambda s: vm_sink(s)["state"] == "retrying", 15), gw.sink("vm")
        delivered_at_fault = gw.sink("vm")["delivered"]
        # While the sink waits on requests that never end, the rest of the gateway
        # answers at once and keeps storing what arrives.
        slowest = 0.0
        while fleet.published < MESSAGES:
            started = time.monotonic()
            status = gw.status()
            took = time.monotonic() - started
            assert status is not None, (f"no /status after {took:.1f} s (gateway running: "
                                        f"{gw.running}):\n{gw.log_text()[-1500:]}")
            assert status["mqtt"]["connected"], status["mqtt"]
            gw.metrics_text()
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.2)
        fleet.wait(timeout=60)
        readings = plug_readings(fleet)
        assert_stored(gw, stored_at_fault, readings)
        sink = assert_backlog_holds(gw, readings)

        assert slowest < 1.0, f"/status and /metrics took up to {slowest:.2f} s"
        assert sink["state"] == "retrying", sink
        assert "no answer" in sink["last_error"] and "2 s" in sink["last_error"], sink
        assert sink["delivered"] == delivered_at_fault, sink
        assert sink["failures"] >= 2, sink
        assert proxy.hangs(first) >= 2 and proxy.answers(first) == {}, proxy.requests()[first:]
        assert not readings_in(victoria)

        proxy.clear()
        assert_drained(gw)
    print(f"hang: {proxy.hangs(first)} requests left unanswered, /status slowest "
          f"{slowest * 1000:.0f} ms")
    close_books("hang", gw, victoria, fleet)


def test_413_over_a_slow_link_drains_a_backlog_without_resending_it(mosquitto, victoria, proxy,
                                                                    make_gateway):
    # After an outage the backlog meets a proxy's body limit over a slow link: splitting
    # one batch takes more requests than fit in the sink's timeout. (The sink used to
    # lose its progress to that timeout and send the same batch again and again.)
    gw = start_gateway(make_gateway, mosquitto, proxy, timeout=3)
    proxy.fault("500")
    with Fleet(PLUGS, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(600)
        fleet.wait(timeout=60)
        assert_backlog_holds(gw, plug_readings(fleet))
        first = len(proxy.requests())
        proxy.latency(0.1)  # each answer takes 0.1 s: a split batch needs many of them
        proxy.fault("413", max_body=2048)
        assert_drained(gw, timeout=30)

    answers = proxy.answers(first)
    assert answers[413] >= 3 and set(answers) == {204, 413}, answers
    book = close_books("413 slow link", gw, victoria, fleet)
    assert book.duplicated == 0, f"batches were sent again: {book}"


def test_413_a_reading_too_large_alone_is_dead_lettered_and_the_rest_flows(
        mosquitto, victoria, proxy, make_gateway):
    # One device's every reading carries a long, incompressible tag: even alone it is
    # over the destination's limit, while the other devices' readings fit.
    note = "".join(random.Random(5).choices(string.ascii_letters + string.digits, k=600))
    noticeboard = SimulatedPlug("noticeboard", "tasmota", tags={"note": note})
    plugs = [*PLUGS, noticeboard]
    gw = start_gateway(make_gateway, mosquitto, proxy, plugs=plugs)
    stored_at_fault = gw.status()["ingest"]["stored"]
    proxy.fault("413", max_body=400)
    with Fleet(plugs, mosquitto.host, mosquitto.port) as fleet:
        fleet.start(250, rate=50)
        fleet.wait(timeout=60)
        assert_stored(gw, stored_at_fault, plug_readings(fleet))
        assert_drained(gw)
        refused = sum(fleet.expected(
            LABELS, [(p, n) for p, n in fleet.accepted() if p is noticeboard]).values())

    assert gw.wait_for(lambda s: s["dead_letters"].get("vm/too_large_413") == refused, 10), \
        gw.status()["dead_letters"]
    refusals = [line for line in gw.log_text().splitlines()
                if " ERROR " in line and "too_large_413" in line]
    assert refusals, "each reading given up is logged"
    close_books("413 too large alone", gw, victoria, fleet, dropped={"too_large_413": refused})
