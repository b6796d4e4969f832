"""The simulated hall's smart meter (a Hildebrand Glow feed) agrees with the plugs: what
it counts over a day is what the plugs and relays counted plus the base load no plug
sees, and its gas counts the boiler's running time; read as the gateway reads it,
through the glow profile, from a recording of the day."""

from __future__ import annotations

from firmware_sim.runner import ScenarioRun
from firmware_sim.scenario import load_scenario
from gateway.config.load import parse_config
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary

START = "2026-01-06T00:00"


def test_the_meter_counts_the_plugs_plus_the_base_load():
    run = ScenarioRun(load_scenario("ordinary-week"), None, seed=3, start=START)
    run.end = run.sim.start + 86400  # one day of the week
    glow = next(d for d in run.built.devices if d.kind == "glow")
    metered = run.built.world.metered
    plugs_before = sum(m.energy_wh for m in metered)
    meter_before = glow.import_wh
    rec = run.record()
    plugs_kwh = (sum(m.energy_wh for m in metered) - plugs_before) / 1000
    meter_kwh = (glow.import_wh - meter_before) / 1000
    base_kwh = glow.base_watts * 24 / 1000
    assert plugs_kwh > 0.2  # the day's bookings used the urn and the lights
    assert abs(meter_kwh - (plugs_kwh + base_kwh)) < 0.05 * (plugs_kwh + base_kwh), \
        (meter_kwh, plugs_kwh, base_kwh)

    # What the gateway reads agrees: the published import total grows by the same.
    config = parse_config("gateway: {name: t}\ndevices:\n"
                          "  - {id: meter, profile: glow, device_id: 70B3D521C0DE}\n")
    decoder = Decoder(config.devices, ProfileLibrary.builtin(), "t")
    totals, gas = [], []
    for m in rec.messages:
        if m.topic.startswith("glow/"):
            for r in decoder.decode(m.topic, m.payload, m.ts).readings:
                if r.metric == "meter.electricity.import_total":
                    totals.append(r.value)
                elif r.metric == "meter.gas.import_total":
                    gas.append(r.value)
    assert totals == sorted(totals) and abs((totals[-1] - totals[0]) - meter_kwh) < 0.2
    # The boiler ran (a winter day of bookings): gas was used, counted half-hourly.
    assert gas == sorted(gas) and gas[-1] - gas[0] > 1.0
    assert len(set(gas)) <= 24 * 2 + 1
