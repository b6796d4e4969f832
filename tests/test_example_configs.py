"""Every example config in deploy/examples/ loads and validates, so the examples cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.load import load_config, parse_config
from gateway.profiles.decoder import Decoder
from gateway.profiles.library import ProfileLibrary

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "deploy" / "examples").glob("*.y*ml"))
# What a deployment sets in the environment for them.
ENV = {"DD_API_KEY": "0123456789abcdef0123456789abcdef", "MQTT_PASSWORD": "example",
       "INFLUX_TOKEN": "example-token"}
# ... and as systemd credentials (${credential:NAME}: $CREDENTIALS_DIRECTORY/NAME).
CREDENTIALS = {"mqtt_password": "example", "dd_api_key": "0123456789abcdef0123456789abcdef"}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """ENV, with CREDENTIALS_DIRECTORY holding CREDENTIALS as systemd would hand them over."""
    for name, value in CREDENTIALS.items():
        (tmp_path / name).write_text(value + "\n")
    return {**ENV, "CREDENTIALS_DIRECTORY": str(tmp_path)}


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_config_loads(path: Path, env: dict[str, str]):
    config = load_config(path, env=env)
    assert config.gateway.name
    assert config.devices, "an example with no devices shows little"
    assert config.sinks
    # Every device's profile resolves and gives topics to subscribe to.
    library = ProfileLibrary.for_config(config, path.parent)
    decoder = Decoder(config.devices, library, config.gateway.name, config.gateway.tags)
    assert decoder.subscriptions()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_commented_out_sinks_in_the_example_are_valid_too(path: Path, env: dict[str, str]):
    """Sinks shown commented out are what users uncomment: they must load as written."""
    lines = path.read_text().splitlines()
    out, shown = [], 0
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith("# - {name:"):
            indent = line[: len(line) - len(stripped)]
            out.append(indent + stripped[2:])
            shown += 1
        else:
            out.append(line)
    if not shown:
        pytest.skip("no commented-out sinks in this example")
    uncommented = parse_config("\n".join(out) + "\n", str(path), env=env)
    assert len(uncommented.sinks) == len(load_config(path, env=env).sinks) + shown


def test_hall_example_reads_every_device_of_the_simulated_hall():
    """`gateway-sim` (site village-hall) and deploy/examples/hall.yaml describe one hall."""
    from firmware_sim.site import gateway_devices, load_site

    simulated = gateway_devices(load_site("village-hall"))
    path = next(p for p in EXAMPLES if p.name == "hall.yaml")
    example = {d.id: d for d in load_config(path, env=ENV).devices}
    assert {d["id"] for d in simulated} == set(example)
    for sim in simulated:
        dev = example[sim["id"]]
        assert dev.profile == sim["profile"]
        params = {k: v for k, v in sim.items() if k not in ("id", "profile", "priority", "tags")}
        assert dict(dev.params) == params, sim["id"]
        assert dev.priority == sim.get("priority", "normal")
