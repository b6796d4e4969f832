"""Devices that publish a counting number: `{"n": 17}` on `hall/<id>/state`.

Each message's one reading (`test.n`, VictoriaMetrics `test_n`) carries the
message number, which only grows per device, so a compacted point's min and
max say exactly which readings it holds. They read through the `generic-json`
profile and work with `programs.plugs.Fleet` like the simulated plugs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from .plugs import Key, _key


@dataclass(frozen=True)
class CountingDevice:
    id: str
    priority: str = "normal"

    def device_config(self) -> dict:
        return {"id": self.id, "profile": "generic-json", "topic": f"hall/{self.id}/state",
                "fields": {"n": "test.n"}, "priority": self.priority}

    def message(self, n: int) -> tuple[str, bytes]:
        return f"hall/{self.id}/state", json.dumps({"n": n}).encode()

    def readings(self, n: int, gateway_labels: Mapping[str, str]) -> list[Key]:
        return [_key("test_n", {**gateway_labels, "device": self.id}, n)]
