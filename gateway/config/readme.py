"""Keep README.md's generated sections (config reference, profile list, value maps) current.

    python -m gateway.config.readme          # rewrite them in place
"""

from __future__ import annotations

import re
from pathlib import Path

from gateway.config.reference import config_reference, own_metrics, profile_list, value_maps

README = Path(__file__).resolve().parents[2] / "README.md"


def sections() -> dict[str, str]:
    return {"config": config_reference(), "profiles": profile_list(), "maps": value_maps(),
            "ownmetrics": own_metrics()}


def render(text: str) -> str:
    """README text with each `<!-- reference:NAME -->` block replaced by fresh content."""
    for name, body in sections().items():
        pattern = re.compile(rf"(<!-- reference:{name} -->\n).*?(<!-- /reference:{name} -->)",
                             re.DOTALL)
        def fill(m: re.Match[str], body: str = body) -> str:
            return m.group(1) + body + m.group(2)

        text = pattern.sub(fill, text)
    return text


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
    print(f"updated {README}")
