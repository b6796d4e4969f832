"""Every example payload documented in a device profile decodes to its readings."""

import pytest

from gateway.profiles.examples import check_examples
from gateway.profiles.library import ProfileLibrary

LIBRARY = ProfileLibrary.builtin()


def test_builtin_profiles_load_without_problems():
    assert LIBRARY.problems == []
    assert {"tasmota"} <= set(LIBRARY.profiles)


@pytest.mark.parametrize("name", sorted(LIBRARY.profiles))
def test_profile_examples_decode_as_documented(name):
    profile = LIBRARY.profiles[name]
    assert profile.spec.examples, f"profile {name} documents no example payloads"
    assert check_examples(LIBRARY, profile) == []
