"""Decoding benchmark: a Tasmota SENSOR message with 20 sensor fields (read by the any-sensor
rule) against a 4-field ENERGY message, through the gateway's real decoder.

Prints each message's decode time (best of --repeat runs of --number decodes) and the
ratio; target: the 20-field message in at most 2 x the time of the 4-field one.

    .venv/bin/python bench/decode.py [--number 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config.load import parse_config
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary

# Both carry the time as a device with a right clock sends it (now, local time): a
# time the gateway does not believe costs the words of its warning on every message.
NOW = time.strftime("%Y-%m-%dT%H:%M:%S").encode()
ENERGY = (b'{"Time":"' + NOW + b'","ENERGY":{"Total":512.417,"Power":38,'
          b'"Voltage":238,"Current":0.218}}')
SENSORS = (b'{"Time":"' + NOW + b'",'
           b'"DS18B20-1":{"Id":"01144A0CB2AA","Temperature":48.6},'
           b'"DS18B20-2":{"Id":"0114472A8EAA","Temperature":31.2},'
           b'"BME680":{"Temperature":19.3,"Humidity":52.1,"DewPoint":9.2,"Pressure":1012.4,'
           b'"Gas":147.7},'
           b'"PMS5003":{"CF1":4,"CF2.5":6,"CF10":7,"PM1":4,"PM2.5":6,"PM10":7,"PB0.3":801,'
           b'"PB0.5":240,"PB1":40,"PB2.5":2},'
           b'"SCD40":{"CarbonDioxide":612,"eCO2":0,"Temperature":20.1},'
           b'"TempUnit":"C","PressureUnit":"hPa"}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    config = parse_config("gateway: {name: bench}\ndevices:\n"
                          "  - {id: plug, profile: tasmota, topic: plug}\n"
                          "  - {id: air, profile: tasmota, topic: air}\n")
    decoder = Decoder(config.devices, ProfileLibrary.builtin(), "bench")
    now = time.time()
    results = {}
    for name, topic, payload in (("ENERGY, 4 fields", "tele/plug/SENSOR", ENERGY),
                                 ("sensors, 20 fields", "tele/air/SENSOR", SENSORS)):
        got = decoder.decode(topic, payload, now)
        assert not got.problems and got.time_rejected is None, (got.problems, got.time_rejected)
        best = min(timeit.repeat(lambda t=topic, p=payload: decoder.decode(t, p, now),
                                 number=args.number, repeat=args.repeat))
        per = best / args.number * 1e6
        results[name] = per
        print(f"decode    {name}: {len(got.readings)} readings, {per:.1f} µs a message, "
              f"{per / len(got.readings):.2f} µs a reading", flush=True)
    ratio = results["sensors, 20 fields"] / results["ENERGY, 4 fields"]
    print(f"ratio     20 sensor fields / 4 ENERGY fields: {ratio:.2f} x "
          f"(target <= 2 x: {'met' if ratio <= 2 else 'NOT met'})")


if __name__ == "__main__":
    main()
