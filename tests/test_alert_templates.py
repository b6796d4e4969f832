"""Alert messages in Datadog's template syntax: each section shows on its transitions only,
variables are filled in, and a mistake is named with where it is before any alert."""

import pytest

from gateway.monitors.template import SECTIONS, Template, TemplateError

MESSAGE = """\
{{#is_alert}}ALERT {{device.name}} at {{value}} (over {{threshold}}){{/is_alert}}\
{{#is_warning}}WARN {{value}} (over {{warn_threshold}}){{/is_warning}}\
{{#is_no_data}}SILENT {{device.name}}{{/is_no_data}}\
{{#is_recovery}}OK again{{/is_recovery}}\
{{#is_alert_recovery}} from alert{{/is_alert_recovery}}\
{{#is_warning_recovery}} from warning{{/is_warning_recovery}}\
{{#is_renotify}} (still){{/is_renotify}}{{^is_renotify}} [first]{{/is_renotify}}\
 room={{tags.room}} gw={{gateway.name}}"""

VALUES = {"device.name": "urn", "value": "2400", "threshold": "2000", "warn_threshold": "1500",
          "tags.room": "kitchen", "gateway.name": "hall"}


@pytest.mark.parametrize(("flags", "expected"), [
    ({"is_alert"}, "ALERT urn at 2400 (over 2000) [first] room=kitchen gw=hall"),
    ({"is_alert", "is_renotify"}, "ALERT urn at 2400 (over 2000) (still) room=kitchen gw=hall"),
    ({"is_warning"}, "WARN 2400 (over 1500) [first] room=kitchen gw=hall"),
    ({"is_no_data"}, "SILENT urn [first] room=kitchen gw=hall"),
    ({"is_recovery", "is_alert_recovery"}, "OK again from alert [first] room=kitchen gw=hall"),
    ({"is_recovery", "is_warning_recovery"},
     "OK again from warning [first] room=kitchen gw=hall"),
])
def test_each_transition_shows_its_sections_only(flags, expected):
    assert Template.parse(MESSAGE).render(frozenset(flags), VALUES) == expected


def test_a_tag_the_device_lacks_renders_as_nothing():
    text = Template.parse("in {{tags.room}}.").render(frozenset(), {})
    assert text == "in ."


def test_sections_nest():
    t = Template.parse("{{#is_alert}}A{{^is_renotify}}-new{{/is_renotify}}{{/is_alert}}")
    assert t.render(frozenset({"is_alert"}), {}) == "A-new"
    assert t.render(frozenset({"is_alert", "is_renotify"}), {}) == "A"
    assert t.render(frozenset({"is_recovery"}), {}) == ""


@pytest.mark.parametrize(("source", "says"), [
    ("{{#is_alert}}down", "line 1, column 1: {{#is_alert}} is never closed"),
    ("ok\n  {{/is_alert}}", "line 2, column 3: {{/is_alert}} closes nothing"),
    ("{{#is_alert}}x{{/is_warning}}", "expected {{/is_alert}}"),
    ("{{#is_alart}}x{{/is_alart}}", "unknown section 'is_alart'"),
    ("at {{valeu}}", "line 1, column 4: unknown variable 'valeu'"),
    ("{{tags.}}", "unknown variable 'tags.'"),
    ("{{ }}", "empty {{ }}"),
])
def test_a_mistake_is_named_with_where_it_is(source, says):
    with pytest.raises(TemplateError) as caught:
        Template.parse(source)
    assert says in str(caught.value)


def test_every_section_name_datadog_documents_for_monitors_is_known():
    for name in ("is_alert", "is_warning", "is_no_data", "is_recovery", "is_alert_recovery",
                 "is_warning_recovery", "is_renotify"):
        assert name in SECTIONS
