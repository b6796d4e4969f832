"""The influx sink's settings (`type: influx`): InfluxDB 1.x/2.x and VictoriaMetrics."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.schema import SinkCommon, url_problems
from gateway.config.validate import Secret, doc


@dataclass(frozen=True)
class InfluxSinkConfig(SinkCommon):
    type: Literal["influx"] = "influx"
    url: str = field(default="", metadata=doc(
        "base URL, e.g. http://127.0.0.1:8428 (VictoriaMetrics), http://127.0.0.1:8086 (InfluxDB)",
        required=True))
    api: Literal["v1", "v2"] = field(
        default="v1", metadata=doc("v1: POST <url>/write; v2: POST <url>/api/v2/write")
    )
    database: str | None = field(default=None, metadata=doc("v1 database (db=)"))
    org: str | None = field(default=None, metadata=doc("v2 organisation"))
    bucket: str | None = field(default=None, metadata=doc("v2 bucket"))
    token: Secret | None = field(default=None, metadata=doc("v2 API token", secret=True))
    username: str | None = field(default=None, metadata=doc("v1 basic-auth user"))
    password: Secret | None = field(default=None, metadata=doc("v1 password", secret=True))
    gzip: bool = field(default=True, metadata=doc("compress request bodies"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from SinkCommon.check(self)
        if not self.url:
            yield "url", ("is required: where to write, e.g. http://127.0.0.1:8428 "
                          "(VictoriaMetrics) or http://127.0.0.1:8086 (InfluxDB)")
        else:
            yield from url_problems("url", self.url)
        if self.api == "v2" and (not self.org or not self.bucket):
            yield "api", "api v2 needs org and bucket"
        if (self.username is None) != (self.password is None):
            yield "username", "username and password must come together"
