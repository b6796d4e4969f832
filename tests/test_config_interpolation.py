"""${VAR}, ${VAR:-default}, ${file:...} and ${credential:...} fill config values;
secrets never appear in error messages."""

import pytest

from gateway.config.load import parse_config
from gateway.config.validate import ConfigError

BASE = """
gateway: {{name: hall}}
mqtt: {{host: "${{MQTT_HOST:-127.0.0.1}}", port: "${{MQTT_PORT:-1883}}", {extra}}}
sinks:
  - {{name: dd, type: datadog, api_key: "{key}"}}
"""


def load(extra="", key="${DD_API_KEY}", env=None):
    return parse_config(BASE.format(extra=extra, key=key), "hall.yaml", env or {})


def test_environment_variables_and_defaults():
    config = load(env={"DD_API_KEY": "abc123", "MQTT_PORT": "8883"})
    assert config.mqtt.host == "127.0.0.1"
    assert config.mqtt.port == 8883  # text from the environment read as the field's type
    assert str(config.sinks[0].api_key) == "abc123"


def test_missing_variable_is_an_error_naming_key_and_variable():
    with pytest.raises(ConfigError) as info:
        load(env={})
    assert str(info.value.problems[0]).startswith(
        "sinks[0].api_key: environment variable DD_API_KEY is not set")


def test_secret_from_a_systemd_credential(tmp_path):
    (tmp_path / "dd_api_key").write_text("from-credential\n")
    config = load(key="${credential:dd_api_key}", env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert str(config.sinks[0].api_key) == "from-credential"


def test_secret_from_a_file_that_is_missing(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(key=f"${{file:{tmp_path}/nope}}")
    assert "cannot read" in str(info.value)


def test_secret_values_are_masked_in_repr_and_errors():
    config = load(env={"DD_API_KEY": "s3cr3t-key"})
    assert "s3cr3t-key" not in repr(config)
    with pytest.raises(ConfigError) as info:
        load(extra="username: u, password: ['s3cr3t-pw']", env={"DD_API_KEY": "k"})
    assert "s3cr3t" not in str(info.value)


def test_bad_number_from_environment_is_reported():
    with pytest.raises(ConfigError) as info:
        load(env={"DD_API_KEY": "k", "MQTT_PORT": "eighty"})
    assert "mqtt.port: must be an integer, got 'eighty'" in str(info.value)


def test_literal_dollar_brace_is_escaped():
    config = load(extra='client_id: "$${not-a-var}"', env={"DD_API_KEY": "k"})
    assert config.mqtt.client_id == "${not-a-var}"
