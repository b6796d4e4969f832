"""Where the log goes and how it looks: on a terminal or in a file, a time, the level
and the part; under systemd, into the journal with each line's priority (journald
reads the `<3>` of `<3>sink vm HELD: ...` as err), and no time of its own (the
journal has one)."""

from __future__ import annotations

import logging
import os
import sys

#: Python's levels as syslog priorities, for journald's `<N>` line prefix
PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
            logging.DEBUG: 7}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"<{PRIORITY.get(record.levelno, 6)}>"
        # Each line of a traceback is an entry of its own in the journal: give each the
        # record's priority.
        return "\n".join(prefix + line for line in text.splitlines())


def to_journal() -> bool:
    """Whether stderr is the journal: systemd sets JOURNAL_STREAM to its device:inode."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler()
    if to_journal():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: "
                                               "%(message)s"))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler])
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
