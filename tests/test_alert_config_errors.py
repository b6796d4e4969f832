"""Mistakes in the alerting config are `gateway check` errors naming the key and what
would be right, before any alert depends on them; a channel's URL (it may hold a
token) is never repeated in the error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "gateway": {"name": "hall", "timezone": "Europe/London"},
    "devices": [{"id": "urn", "profile": "tasmota", "topic": "urn"}],
    "people": [{"name": "ann", "channels": ["json://127.0.0.1:9/ann"]}],
}
URN = {"name": "urn-hot", "type": "threshold", "metric": "plug.power", "critical": 2000}


@pytest.mark.parametrize(("extra", "key", "says"), [
    ({"monitors": [{**URN, "devices": ["urm"]}]}, "monitors[0].devices[0]",
     "no device 'urm' among devices: (urn)"),
    ({"monitors": [{**URN, "metric": "plug.powr"}]}, "monitors[0].metric",
     "did you mean plug.power"),
    ({"monitors": [{**URN, "notify": ["bob"]}]}, "monitors[0].notify[0]",
     "no person 'bob' among people: (name one of ann, or 'on_duty' or 'everyone')"),
    ({"monitors": [{**URN, "message": "{{#is_alert}}hot"}]}, "monitors[0].message",
     "line 1, column 1: {{#is_alert}} is never closed with {{/is_alert}}"),
    ({"monitors": [{**URN, "message": "at {{valeu}}"}]}, "monitors[0].message",
     "unknown variable 'valeu'"),
    ({"monitors": [{**URN, "type": "treshold"}]}, "monitors[0].type",
     "must be one of 'threshold', 'state', 'no_data', 'anomaly'"),
    ({"monitors": [URN], "downtimes": [{"name": "nights", "rrule": "FREQ=WEEKLY;BYDAY=XX",
                                        "start": "2026-01-05T19:00", "duration": "14h"}]},
     "downtimes[0].rrule", "not a valid RRULE"),
    ({"monitors": [URN], "downtimes": [{"name": "nights", "windows": ["Mon-Fry 19:00-09:00"]}]},
     "downtimes[0].windows[0]", "is not a weekly window"),
    ({"people": [{"name": "ann", "channels": ["tgram://s3cret-token"]}]},
     "people[0].channels[0]", "Apprise cannot read this tgram:// URL"),
    ({"monitors": [{**URN, "booking": {"only": "unbooked"}}]}, "monitors[0].booking",
     "needs the hall's calendar"),
])
def test_gateway_check_names_the_key(tmp_path, extra, key, says):
    config = tmp_path / "gateway.yaml"
    config.write_text(json.dumps({**BASE, **extra}))
    run = subprocess.run([sys.executable, "-m", "gateway", "check", "--config", str(config)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 1, run.stdout
    line = next((ln for ln in run.stderr.splitlines() if ln.strip().startswith(key + ":")), "")
    assert says in line, run.stderr
    assert "s3cret-token" not in run.stdout + run.stderr
