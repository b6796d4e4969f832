"""What devices said of themselves (units, enum values: gateway.profiles.learn), kept in
`learned.json` beside the store, so a restarted gateway knows them at once: readings
the broker kept for it through the restart can arrive before the retained message
that describes their device does."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from gateway.profiles.decoder import Decoder
from gateway.profiles.learn import Learned, learned_from_json, learned_to_json

log = logging.getLogger("gateway.learned")

FILE = "learned.json"


def remember_learned(decoder: Decoder, data_dir: Path) -> None:
    """Give `decoder` what was learned before, and keep what it learns from now on."""
    path = data_dir / FILE
    try:
        decoder.learned = learned_from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        log.warning("what devices said of themselves could not be read back from %s (%s): "
                    "it is learned again from their next description", path, exc)

    def keep(learned: dict[str, dict[str, Learned]]) -> None:
        try:
            part = path.with_suffix(".part")
            part.write_text(json.dumps(learned_to_json(learned)))
            os.replace(part, path)
        except OSError as exc:
            log.warning("cannot keep what devices said of themselves in %s: %s", path,
                        exc.strerror)

    decoder.on_learn = keep
