"""The simulated hall behaves physically: what a subscriber sees adds up and makes sense.

Every assertion reads the published payloads as a subscriber to '#' would (JSON or
plain text), never the simulator's internals: energy meters only count up and roll
over at local midnight, power follows the relays, the hall warms and cools with the
boiler, and devices that drop off say so through their last will or availability.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from firmware_sim.network import Published
from firmware_sim.runner import ScenarioRun
from firmware_sim.scenario import load_scenario
from firmware_sim.site import SITES_DIR

LONDON = ZoneInfo("Europe/London")
PLUGS = ("defib_socket", "kitchen_urn", "stage_lights")
HALL_TEMPERATURE = "hall-heating/sensor/hall_temperature/state"
BOILER_RELAY = "hall-heating/switch/boiler_relay/state"
SHELLY_STATUS = "shellyplusplugs-stage/status/switch:0"


@dataclass
class Recorded:
    """A scenario's messages, and the run's simulated start (epoch seconds)."""

    start: float
    messages: list[Published]
    scenario: Any

    def on(self, topic: str) -> list[tuple[float, str]]:
        return [(m.ts, m.payload.decode()) for m in self.messages if m.topic == topic]

    def json_on(self, topic: str) -> list[tuple[float, Any]]:
        return [(ts, json.loads(text)) for ts, text in self.on(topic)]

    def energy(self, plug: str) -> list[tuple[float, dict[str, Any]]]:
        return [(ts, body["ENERGY"]) for ts, body in self.json_on(f"tele/{plug}/SENSOR")]

    def event(self, device: str, action: str) -> Any:
        [event] = [e for e in self.scenario.events if e.device == device and e.action == action]
        return event

    def event_time(self, device: str, action: str) -> float:
        return float(self.start + self.event(device, action).at)


def record(scenario: str | Path, start: str | None = "2026-01-05T07:00") -> Recorded:
    """Run a scenario (name or file) into a recording, as fast as it goes."""
    sc = load_scenario(str(scenario))
    run = ScenarioRun(sc, None, seed=1, start=start, report=lambda ts, text: None)
    return Recorded(run.sim.start, run.record().messages, sc)


def local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, LONDON)


@pytest.fixture(scope="module")
def week() -> Recorded:
    return record("ordinary-week")


@pytest.fixture(scope="module")
def heating_left_on() -> Recorded:
    return record("heating-left-on", start=None)  # the scenario's own Thursday 17:00


@pytest.fixture(scope="module")
def plug_offline() -> Recorded:
    return record("plug-offline")


# -- Tasmota energy meters ---------------------------------------------------------------------


@pytest.mark.parametrize("plug", PLUGS)
def test_tasmota_total_never_decreases_over_the_week(week: Recorded, plug: str) -> None:
    totals = [e["Total"] for _, e in week.energy(plug)]
    assert len(totals) >= 7 * 24 * 12  # a SENSOR every TelePeriod (300 s)
    falls = [(a, b) for a, b in pairwise(totals) if b < a]
    assert falls == []
    assert totals[-1] > totals[0]  # every plug used some energy in the week


def assert_today_rolls_over_at_local_midnight(energy: list[tuple[float, dict[str, Any]]]
                                              ) -> int:
    """Today only grows within a local day; after midnight it starts again from about 0
    and Yesterday holds the day's last Today plus what was used up to midnight."""
    midnights = 0
    for (t0, a), (t1, b) in pairwise(energy):
        used = b["Total"] - a["Total"]  # kWh between the two reports
        if local(t0).date() == local(t1).date():
            assert b["Today"] >= a["Today"], local(t1)
            assert b["Yesterday"] == a["Yesterday"], local(t1)
            continue
        midnights += 1
        assert b["Today"] <= used + 0.001, local(t1)
        # The last report was up to a TelePeriod before midnight: what was used since
        # then, less what already counts as the new day, belongs to yesterday.
        assert b["Yesterday"] == pytest.approx(a["Today"] + used - b["Today"], abs=0.002), \
            local(t1)
        assert b["Yesterday"] == pytest.approx(a["Today"], abs=0.005), local(t1)
    return midnights


@pytest.mark.parametrize("plug", PLUGS)
def test_tasmota_today_rolls_into_yesterday_at_local_midnight(week: Recorded, plug: str) -> None:
    assert assert_today_rolls_over_at_local_midnight(week.energy(plug)) == 7


def test_tasmota_midnight_is_local_midnight_in_summer_time(tmp_path: Path) -> None:
    # In June London is UTC+1: the day rolls over at 23:00 UTC, not at 00:00 UTC.
    path = tmp_path / "june-night.yaml"
    path.write_text("scenario: june-night\nsite: village-hall\nduration: 6h\n")
    rec = record(path, start="2026-06-01T20:00")
    energy = rec.energy("defib_socket")
    assert assert_today_rolls_over_at_local_midnight(energy) == 1
    [reset] = [ts for (_, a), (ts, b) in pairwise(energy)
               if b["Today"] < a["Today"]]
    assert datetime.fromtimestamp(reset, ZoneInfo("UTC")).strftime("%H:%M") == "23:00"
    sensors = rec.json_on("tele/defib_socket/SENSOR")
    # Tasmota stamps local time without a zone.
    assert all(body["Time"] == local(ts).strftime("%Y-%m-%dT%H:%M:%S") for ts, body in sensors)


# -- power follows the relays ------------------------------------------------------------------


def test_urn_power_is_zero_when_off_and_boiling_in_the_first_report_after_on(
        tmp_path: Path) -> None:
    path = tmp_path / "urn.yaml"
    path.write_text("""
scenario: urn-switching
site: village-hall
duration: 6h
events:
  - {at: 1h, device: kitchen-urn, do: "on"}
  - {at: 2h, device: kitchen-urn, do: "off"}
  - {at: 3h2m, device: kitchen-urn, do: "on"}
  - {at: 3h30m, device: kitchen-urn, do: "off"}
  - {at: 4h4m30s, device: kitchen-urn, do: "on"}
  - {at: 5h, device: kitchen-urn, do: "off"}
""")
    rec = record(path)
    relay: str | None = None
    switched_on_at: float | None = None
    off_reports: list[float] = []
    first_after_on: list[tuple[float, float]] = []  # (seconds after ON, watts)
    for m in rec.messages:
        if m.topic == "stat/kitchen_urn/POWER":
            if m.payload == b"ON" and relay != "ON":
                switched_on_at = m.ts
            relay = m.payload.decode()
        elif m.topic == "tele/kitchen_urn/SENSOR":
            watts = json.loads(m.payload)["ENERGY"]["Power"]
            if relay == "OFF":
                off_reports.append(watts)
            elif switched_on_at is not None:
                first_after_on.append((m.ts - switched_on_at, watts))
                switched_on_at = None
    assert len(off_reports) > 30
    assert set(off_reports) == {0}
    assert len(first_after_on) == 3
    for delay, watts in first_after_on:
        assert delay <= 300  # within one TelePeriod, so still inside the 18-minute boil
        assert watts > 2000


def test_defib_socket_draws_power_all_week(week: Recorded) -> None:
    watts = [e["Power"] for _, e in week.energy("defib_socket")]
    assert len(watts) >= 2016
    assert min(watts) > 0
    assert max(watts) > 20  # the cabinet heater cycles in the winter cold
    assert [text for _, text in week.on("stat/defib_socket/POWER")] == ["ON"]


def test_defib_socket_switched_off_draws_nothing_until_switched_back_on() -> None:
    rec = record("defib-socket-off", start=None)
    off, on = rec.event_time("defib-socket", "off"), rec.event_time("defib-socket", "on")
    assert [(ts, text) for ts, text in rec.on("stat/defib_socket/POWER") if ts > rec.start] \
        == [(off, "OFF"), (on, "ON")]
    energy = rec.energy("defib_socket")
    during = [e for ts, e in energy if off < ts < on]
    assert len(during) > 400  # Saturday afternoon to Monday morning
    assert {e["Power"] for e in during} == {0}
    assert len({e["Total"] for e in during}) == 1  # the meter stands still
    assert min(e["Power"] for ts, e in energy if ts < off or ts > on) > 0


# -- the hall's air ----------------------------------------------------------------------------


def temperatures(rec: Recorded) -> list[tuple[float, float]]:
    return [(ts, float(text)) for ts, text in rec.on(HALL_TEMPERATURE)]


def test_hall_warms_whenever_the_boiler_runs(heating_left_on: Recorded) -> None:
    relay_on = False
    stretches: list[list[float]] = []  # readings from each ON until the next OFF
    for m in heating_left_on.messages:
        if m.topic == BOILER_RELAY:
            relay_on = m.payload == b"ON"
            if relay_on:
                stretches.append([])
        elif m.topic == HALL_TEMPERATURE and relay_on:
            stretches[-1].append(float(m.payload))
    long_enough = [s for s in stretches if len(s) >= 3]
    assert len(long_enough) > 20  # the thermostat cycles all night
    for readings in long_enough:
        assert all(b >= a for a, b in pairwise(readings)), readings
        assert readings[-1] > readings[0], readings


def test_held_hall_stays_near_21_all_night_then_cools_after_release(
        heating_left_on: Recorded) -> None:
    temps = temperatures(heating_left_on)
    night = [v for ts, v in temps if local(ts).date().isoformat() == "2026-01-09"
             and local(ts).hour < 7]
    assert len(night) == 7 * 60
    assert min(night) >= 19.5 and max(night) <= 22.5
    assert sum(night) / len(night) == pytest.approx(21, abs=0.5)

    release = heating_left_on.event_time("heating", "release")
    assert heating_left_on.on("hall-heating/climate/hall_thermostat/target_temperature/state")[-1] \
        == (release, "12.0")
    assert heating_left_on.on(BOILER_RELAY)[-1] == (release, "OFF")
    after = [v for ts, v in temps if ts > release]
    assert all(b <= a for a, b in pairwise(after))
    assert after[0] - after[-1] > 4  # two hours with the boiler off in January


def test_empty_warm_hall_cools_towards_outside_and_setback_catches_it(tmp_path: Path) -> None:
    site = yaml.safe_load((SITES_DIR / "village-hall.yaml").read_text())
    site["world"]["inside"] = 20  # as a booking leaves it
    (tmp_path / "warm-hall.yaml").write_text(yaml.safe_dump(site))
    (tmp_path / "cooling.yaml").write_text("scenario: cooling\nsite: warm-hall.yaml\n"
                                           "duration: 8h\n")
    rec = record(tmp_path / "cooling.yaml", start="2026-01-05T20:00")
    temps = temperatures(rec)
    first_on = next(ts for ts, text in rec.on(BOILER_RELAY) if text == "ON")
    cooling = [v for ts, v in temps if ts <= first_on]
    assert all(b <= a for a, b in pairwise(cooling))
    after_hour = next(v for ts, v in temps if ts >= rec.start + 3600)
    assert 2 <= temps[0][1] - after_hour <= 7  # a time constant of a few hours
    assert 1.5 * 3600 <= first_on - rec.start <= 4 * 3600
    assert min(v for _, v in temps) >= 11.0  # the 12 °C setback, less its hysteresis
    assert max(v for ts, v in temps if ts > first_on) <= 13.0


def test_setback_keeps_the_empty_hall_above_11_all_week(week: Recorded) -> None:
    temps = [v for ts, v in temperatures(week) if ts >= week.start + 3600]
    assert min(temps) >= 11.0
    assert max(temps) <= 22.0


# -- Shelly Plus Plug S ------------------------------------------------------------------------


def test_shelly_energy_counts_up_and_no_power_flows_with_the_output_off(week: Recorded
                                                                        ) -> None:
    statuses = [s for _, s in week.json_on(SHELLY_STATUS)]
    totals = [s["aenergy"]["total"] for s in statuses]
    assert all(b >= a for a, b in pairwise(totals))
    assert totals[-1] > totals[0]
    off = [s for s in statuses if s["output"] is False]
    assert len(off) > 100  # switched off at the end of Saturday's party
    assert {(s["apower"], s["current"]) for s in off} == {(0, 0)}
    assert min(s["apower"] for s in statuses if s["output"]) > 0  # the PA idles at ~38 W


# -- Zigbee2MQTT availability ------------------------------------------------------------------


def test_unplugged_bulb_goes_offline_after_the_timeout_and_online_with_power(
        plug_offline: Recorded) -> None:
    unplugged = plug_offline.event_time("porch-bulb", "unplug")
    back = unplugged + plug_offline.event("porch-bulb", "unplug").args["for"]
    topic = "zigbee2mqtt/porch_bulb/availability"
    seen = [(ts - unplugged, json.loads(text)) for ts, text in plug_offline.on(topic)
            if ts > plug_offline.start]
    assert seen == [(600, {"state": "offline"}), (back - unplugged, {"state": "online"})]
    assert all(m.retain for m in plug_offline.messages if m.topic == topic)
    silent = [m for m in plug_offline.messages
              if m.topic == "zigbee2mqtt/porch_bulb" and unplugged < m.ts < back]
    assert silent == []


def test_zigbee2mqtt_1x_availability_is_plain_text() -> None:
    rec = record("flapping-device")
    availability = [(m.ts, m.topic, m.payload) for m in rec.messages
                    if m.topic.startswith("zigbee2mqtt/") and m.topic.endswith("/availability")]
    assert {payload for _, _, payload in availability} == {b"online", b"offline"}
    assert [(ts - rec.start, p) for ts, topic, p in availability
            if topic == "zigbee2mqtt/stage_bulb/availability" and ts > rec.start] \
        == [(100 * 60, b"offline"), (110 * 60, b"online")]
    assert rec.on("zigbee2mqtt/bridge/state") == [(rec.start, "online")]


# -- Tasmota last will -------------------------------------------------------------------------


def test_tasmota_will_says_offline_at_the_drop_and_online_on_return(plug_offline: Recorded
                                                                    ) -> None:
    dropped = plug_offline.event_time("kitchen-urn", "wifi-drop")
    back = dropped + 40 * 60  # the scenario's `for: 40m`
    lwt = [(ts, text) for ts, text in plug_offline.on("tele/kitchen_urn/LWT")]
    assert lwt[:3] == [(plug_offline.start, "Online"), (dropped, "Offline"), (back, "Online")]
    assert all(m.retain for m in plug_offline.messages if m.topic == "tele/kitchen_urn/LWT")
    while_away = [m.topic for m in plug_offline.messages
                  if "/kitchen_urn/" in m.topic and dropped < m.ts < back]
    assert while_away == []
    resumed = [ts for ts, _ in plug_offline.on("tele/kitchen_urn/SENSOR") if ts > back]
    assert resumed[0] - back <= 300  # telemetry starts again after the reconnect
