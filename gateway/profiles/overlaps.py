"""Two devices reading the same messages.

A message that two devices read gives readings for both, each tagged with its
own device id: the same plug counted twice, or a plug's power filed under a
device it does not belong to. Nothing at run time can tell which was meant, so
`gateway check` says so:
- an error when two devices of one profile, with the same parameters, read the
  same topic: one is a copy of the other (a topic pasted twice);
- a warning when the same topic is read by devices that read it differently
  (two generic-json devices taking different fields of one hub's payload, say),
  or one device's wildcard also takes another device's topic.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.config.schema import DeviceConfig
from gateway.config.validate import Problem
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary
from gateway.profiles.topics import covers


def topic_overlaps(devices: Sequence[DeviceConfig],
                   library: ProfileLibrary) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) about devices whose topic filters meet, each naming both devices."""
    decoder = Decoder(devices, library)
    index = {d.id: i for i, d in enumerate(devices)}
    by_id = {d.id: d for d in devices}
    readers: dict[str, list[str]] = {}  # filter -> devices that read something there
    # Rules that read nothing there (ignore) or only learn what a message says of each
    # device (Zigbee2MQTT's bridge/devices, shared by all its devices) are no overlap.
    for flt, routes in decoder.exact.items():
        for route in routes:
            if not route.rule.ignore and not route.rule.learn:
                readers.setdefault(flt, []).append(route.device.id)
    for route in decoder.patterned:
        if not route.rule.ignore and not route.rule.learn:
            readers.setdefault(route.filter, []).append(route.device.id)
    errors: list[Problem] = []
    warnings: list[Problem] = []
    reported: set[tuple[str, str]] = set()
    for flt, ids in readers.items():
        first = ids[0]
        for other in dict.fromkeys(ids[1:]):
            if other == first or (first, other) in reported:
                continue
            reported.add((first, other))
            a, b = by_id[first], by_id[other]
            same = a.profile == b.profile and dict(a.params) == dict(b.params)
            (errors if same else warnings).append(Problem(
                f"devices[{index[other]}]",
                f"device {other!r} reads topic {flt!r}, as devices[{index[first]}] "
                f"({first!r}) does" + (
                    " with the same profile and parameters: every message there would be "
                    "counted twice, once for each; check the topic parameters" if same else
                    ": messages there give readings for both devices")))
    wide = [(flt, ids) for flt, ids in readers.items() if "+" in flt or "#" in flt]
    for wflt, wids in wide:
        for flt, ids in readers.items():
            if flt == wflt or not covers(wflt, flt):
                continue
            for w in dict.fromkeys(wids):
                for other in dict.fromkeys(ids):
                    if other == w or (w, other) in reported:
                        continue
                    reported.add((w, other))
                    warnings.append(Problem(
                        f"devices[{index[w]}]",
                        f"device {w!r} reads {wflt!r}, which also takes {flt!r} of "
                        f"devices[{index[other]}] ({other!r}): messages there give readings "
                        "for both devices"))
    return errors, warnings
