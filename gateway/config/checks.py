"""Local checks' settings (`checks:`): small measurements the gateway makes itself, each
every `min_collection_interval`, like a monitoring agent's checks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from gateway.config.validate import Duration, doc


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class CheckConfig:
    name: str = field(metadata=doc(
        "the check's name: its readings come from a device of this name (or `device`)"))
    type: Literal["system", "network", "random", "custom"] = field(metadata=doc(
        "system (CPU temperature and throttling, load, memory, disk free for the store, "
        "uptime), network (whether each sink's host answers, how fast, the default "
        "route's interface), random (random.value 0-1000, to try dashboards and "
        "monitors), custom (a Check class in `file`)"))
    min_collection_interval: Duration = field(default=Duration(15.0), metadata=doc(
        "how often it runs"))
    timeout: Duration = field(default=Duration(10.0), metadata=doc(
        "a run taking longer is given up (counted; the next run waits until it ends)"))
    file: str = field(default="", metadata=doc(
        "custom: a Python file with one subclass of gateway.sources.check.Check "
        "(relative to the config file)"))
    options: Mapping[str, Any] = field(default_factory=_empty, metadata=doc(
        "what the check reads from self.options (network: targets, a list of host:port)"))
    device: str = field(default="", metadata=doc(
        "the device its readings belong to; default: the check's name"))

    def check(self) -> Iterator[tuple[str, str]]:
        if self.min_collection_interval <= 0:
            yield "min_collection_interval", "must be more than 0"
        if self.timeout <= 0:
            yield "timeout", "must be more than 0"
        if self.type == "custom" and not self.file:
            yield "file", "a custom check needs its Python file, e.g. checks/tank.py"
        if self.type != "custom" and self.file:
            yield "file", f"only a custom check has a file; a {self.type} check is built in"
