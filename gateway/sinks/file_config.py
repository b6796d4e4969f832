"""The file sink's settings (`type: file`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.schema import SinkCommon
from gateway.config.validate import doc


@dataclass(frozen=True)
class FileSinkConfig(SinkCommon):
    type: Literal["file"] = "file"
    path: str = field(
        default="readings.jsonl",
        metadata=doc("JSON-lines file, one reading a line; a relative path is inside "
                     "gateway.data_dir (beside the store)"),
    )
    max_bytes: int = field(
        default=10_000_000,
        metadata=doc("rotate before the file would grow past this many bytes; 0: never rotate"),
    )
    keep: int = field(
        default=5, metadata=doc("rotated files kept (path.1 newest ... path.<keep> oldest)")
    )
    fsync: bool = field(
        default=True,
        metadata=doc("fsync before confirming: a power cut loses no confirmed line"),
    )

    def check(self) -> Iterator[tuple[str, str]]:
        yield from SinkCommon.check(self)
        if not self.path.strip() or self.path.endswith(("/", "\\")):
            yield "path", "must name a file (e.g. readings.jsonl), not a folder"
        if self.max_bytes < 0:
            yield "max_bytes", "must be 0 (never rotate) or more"
        if self.keep < 0:
            yield "keep", "must be 0 (delete a full file) or more"
