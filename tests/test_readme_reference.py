"""README's configuration reference and profile list match the code (they cannot rot)."""

from gateway.config.readme import README, render


def test_readme_generated_sections_are_current():
    text = README.read_text()
    assert "<!-- reference:config -->" in text and "<!-- reference:profiles -->" in text
    assert render(text) == text, "run: .venv/bin/python -m gateway.config.readme"


def test_readme_documents_every_sink_type_and_profile():
    text = README.read_text()
    for needle in ("type: influx", "type: datadog", "type: mqtt", "`tasmota`", "`shelly`",
                   "`zigbee2mqtt`", "`esphome`", "`generic-json`", "`store.durability`"):
        assert needle in text
