"""A wrong config is refused with every problem named by its key path."""

import pytest

from gateway.config.load import parse_config
from gateway.config.validate import ConfigError

GOOD = """
gateway: {name: hall}
devices:
  - {id: plug1, profile: tasmota, topic: plug_1}
sinks:
  - {name: vm, type: influx, url: http://127.0.0.1:8428}
"""


def problems(text, env=None):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "hall.yaml", env or {})
    return [str(p) for p in info.value.problems]


def test_good_config_loads_with_visible_defaults():
    config = parse_config(GOOD, "hall.yaml", {})
    assert config.gateway.name == "hall"
    assert config.mqtt.port == 1883
    assert config.store.durability == "full"
    assert config.client_id == "gateway-hall"
    assert config.devices[0].params == {"topic": "plug_1"}


def test_unknown_keys_are_errors_with_their_path_and_a_suggestion():
    found = problems(GOOD.replace("{name: hall}", "{name: hall, data_dri: x}"))
    assert found == [("gateway.data_dri: unknown key (did you mean 'data_dir'?); allowed here: "
                      "data_dir, device_time, http, name, profiles_dirs, self_metrics_interval, "
                      "status_led_pin, tags, timezone")]


def test_every_problem_is_reported_not_just_the_first():
    text = """
gateway: {name: hall, timezone: Mars/Olympus}
mqtt: {port: "not a port", qos: 2}
store: {durability: sometimes}
devices:
  - {id: plug1, profile: tasmoda, topic: x}
  - {id: plug2, profile: tasmota}
sinks:
  - {name: vm, type: influxdb}
  - {name: dd, type: datadog}
"""
    found = "\n".join(problems(text))
    assert "gateway.timezone: unknown time zone 'Mars/Olympus'" in found
    assert "mqtt.port: must be an integer, got 'not a port'" in found
    assert "mqtt.qos: unknown key" in found
    assert "store.durability: must be one of 'full', 'normal', got 'sometimes'" in found
    assert ("sinks[0].type: must be one of 'influx', 'datadog', 'mqtt', 'file', "
            "got 'influxdb'") in found
    assert "sinks[1].api_key: is required" in found


def test_device_profile_problems_name_the_device_key():
    text = GOOD.replace("{id: plug1, profile: tasmota, topic: plug_1}",
                        "{id: plug1, profile: tasmota, topik: plug_1}")
    found = problems(text)
    assert any(p.startswith("devices[0].topik: unknown key for profile 'tasmota'") for p in found)
    assert any(p.startswith("devices[0].topic: is required by profile 'tasmota'") for p in found)


def test_unknown_profile_lists_the_known_ones():
    found = problems(GOOD.replace("profile: tasmota", "profile: sonoff"))
    assert found[0].startswith("devices[0].profile: unknown profile 'sonoff'; known profiles:")
    assert "tasmota" in found[0]


def test_duplicate_device_ids_and_sink_names():
    text = GOOD.replace("  - {id: plug1, profile: tasmota, topic: plug_1}",
                        "  - {id: plug1, profile: tasmota, topic: plug_1}\n"
                        "  - {id: plug1, profile: tasmota, topic: plug_2}")
    assert "devices[1]: device id 'plug1' is also used by devices[0]" in problems(text)


def test_yaml_syntax_error_gives_line_and_column():
    found = problems("gateway: {name: hall\nmqtt: [")
    assert found[0].startswith("line ")
    assert "not valid YAML" in found[0]


def test_sinks_must_be_a_list():
    assert "sinks: must be a list, got 'vm'" in problems(GOOD.split("sinks:")[0] + "sinks: vm\n")
