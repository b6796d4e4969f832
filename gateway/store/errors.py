"""What a failed store operation means for the user: disk full, corrupt, locked, or else.

SQLite reports a full disk (ENOSPC, or PRAGMA max_page_count reached) as
SQLITE_FULL, a damaged file as SQLITE_CORRUPT or SQLITE_NOTADB. The first is
waited out (the broker keeps what is not acknowledged); the second is
recovered from (`gateway.store.recovery`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

_BASE = 0xFF  # the primary result code is the low byte of an extended one

_REASONS = {
    13: ("disk_full", "the disk (or the store's page limit) is full; free some space"),
    11: ("corrupt", "the store file is damaged"),
    26: ("corrupt", "the store file is not an SQLite database"),
    5: ("locked", "another process holds the store's lock"),
    6: ("locked", "another process holds the store's lock"),
    8: ("read_only", "the store file or its folder is read-only for this user"),
    14: ("cannot_open", "the store file cannot be opened (missing folder or permission)"),
    10: ("io_error", "the disk reported an I/O error"),
}


@dataclass(frozen=True)
class StoreFault:
    """A classified store error: a stable `reason` (a metric tag) and whether it is corruption."""

    reason: str
    hint: str

    @property
    def corrupt(self) -> bool:
        return self.reason == "corrupt"

    def explain(self, exc: BaseException) -> str:
        return f"{self.hint} ({exc})"


def classify(exc: BaseException) -> StoreFault:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & _BASE) in _REASONS:
        return StoreFault(*_REASONS[code & _BASE])
    text = str(exc).lower()
    if "disk is full" in text or "database or disk is full" in text:
        return StoreFault(*_REASONS[13])
    if "malformed" in text or "not a database" in text:
        return StoreFault(*_REASONS[11])
    if isinstance(exc, sqlite3.Error):
        return StoreFault("error", "the store reported an error")
    return StoreFault("error", "unexpected error")
