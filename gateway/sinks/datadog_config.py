"""The datadog sink's settings (`type: datadog`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.schema import SinkCommon, url_problems
from gateway.config.validate import Secret, doc

DATADOG_SITES = (
    "datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu",
    "ap1.datadoghq.com", "ap2.datadoghq.com", "ddog-gov.com",
)


@dataclass(frozen=True)
class DatadogSinkConfig(SinkCommon):
    type: Literal["datadog"] = "datadog"
    api_key: Secret = field(default=Secret(""), metadata=doc("Datadog API key", secret=True))
    site: str = field(default="datadoghq.com", metadata=doc("Datadog site"))
    api: Literal["v2", "v1"] = field(
        default="v2", metadata=doc("v2: /api/v2/series (default); v1: /api/v1/series")
    )
    url: str | None = field(default=None, metadata=doc("intake base URL; overrides site"))
    compression: Literal["deflate", "gzip", "none"] = field(
        default="deflate", metadata=doc("request body compression")
    )
    historical: bool = field(
        default=False,
        metadata=doc("the account has historical metrics ingestion: send old points as they are"),
    )
    stale: Literal["dead_letter", "drop"] = field(
        default="dead_letter",
        metadata=doc("without historical: points over 1 h old or 10 min ahead go to the "
                     "dead-letter table (kept, counted) or are dropped (counted)"),
    )
    batch_size: int = field(default=20000, metadata=doc("most readings per request"))

    def check(self) -> Iterator[tuple[str, str]]:
        yield from SinkCommon.check(self)
        if not self.api_key:
            yield "api_key", "is required (use ${DD_API_KEY} or a credential file)"
        if self.url is None and self.site not in DATADOG_SITES:
            yield "site", "must be one of " + ", ".join(DATADOG_SITES)
        if self.url is not None:
            yield from url_problems("url", self.url)
