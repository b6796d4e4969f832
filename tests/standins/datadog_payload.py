"""Datadog metrics intake request bodies: decompression, size limits, schema validation.

The schema is not re-invented here: bodies are deserialized into the official
``datadog-api-client`` models (v2 ``MetricPayload``, v1 ``MetricsPayload``) with the
library's own type-checking deserializer, ``model_utils.validate_and_convert_types``
(the call ``ApiClient.deserialize`` makes, with ``check_type=True``). That
deserializer is lenient by design (a client must survive new server fields): an
item that fails inside a list becomes an ``UnparsedObject``, an unknown enum value
sets ``_unparsed``, and ``None`` skips the type check. For an intake those are
errors, so :func:`validate` walks the result and reports each one with its path.

Facts (official API reference, "Submit metrics", and the ``datadog-api-client``
2.62 docstrings of ``MetricsApi.submit_metrics`` and ``MetricContentEncoding``):
  * v2 ``/api/v2/series``: payload at most 500 KB (512000 bytes); decompressed
    size less than 5 MB (5242880 bytes). ``Content-Encoding``: deflate, zstd1, gzip.
  * v1 ``/api/v1/series``: the reference states 3.2 MB compressed / 62 MB
    decompressed; this stand-in applies the stricter v2 limits to both (as the
    gateway's DESIGN.md does). ``Content-Encoding``: deflate, gzip.
  * Point timestamps are POSIX seconds and "cannot be more than ten minutes in
    the future or more than one hour in the past" (``MetricSeries.points``).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from datadog_api_client import Configuration
from datadog_api_client.model_utils import (
    ModelNormal,
    ModelSimple,
    OpenApiModel,
    UnparsedObject,
    none_type,
    validate_and_convert_types,
)
from datadog_api_client.v1.model.metrics_payload import MetricsPayload
from datadog_api_client.v2.model.metric_payload import MetricPayload

MAX_COMPRESSED_BYTES = 512_000
MAX_DECOMPRESSED_BYTES = 5_242_880

try:  # optional: only if the package happens to be installed
    import zstandard as _zstd
except ImportError:  # pragma: no cover - depends on the environment
    _zstd = None

#: Content-Encoding values each API version documents.
ENCODINGS = {
    "v1": {"deflate", "gzip"},
    "v2": {"deflate", "gzip", "zstd1"},
}

#: v2 ``MetricIntakeType`` numbers to names.
V2_TYPES = {0: "unspecified", 1: "count", 2: "rate", 3: "gauge"}

_CONFIG = Configuration()


class PayloadError(Exception):
    """A request body the intake refuses: HTTP ``status`` and Datadog-style ``errors``."""

    def __init__(self, status: int, errors: list[str]) -> None:
        super().__init__(f"{status}: {errors}")
        self.status = status
        self.errors = errors


def decompress(raw: bytes, encoding: str | None, version: str) -> bytes:
    """Undo ``Content-Encoding`` and enforce both size limits (413 when exceeded).

    Decompression stops one byte past the limit, so a zip bomb costs nothing.
    """
    if len(raw) > MAX_COMPRESSED_BYTES:
        raise PayloadError(413, ["Payload too large"])
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        body = raw
    elif name not in ENCODINGS[version]:
        raise PayloadError(400, [f"Unsupported Content-Encoding: {encoding}"])
    elif name in ("deflate", "gzip"):
        wbits = zlib.MAX_WBITS if name == "deflate" else zlib.MAX_WBITS | 16
        try:
            inflater = zlib.decompressobj(wbits)
            body = inflater.decompress(raw, MAX_DECOMPRESSED_BYTES + 1)
            if len(body) <= MAX_DECOMPRESSED_BYTES and not inflater.eof:
                raise PayloadError(400, [f"Truncated {name} body"])
        except zlib.error as exc:
            raise PayloadError(400, [f"Invalid {name} body: {exc}"]) from exc
    else:  # zstd1
        if _zstd is None:
            raise PayloadError(400, ["zstd1 needs the 'zstandard' package in this stand-in"])
        try:
            reader = _zstd.ZstdDecompressor().stream_reader(raw)
            body = reader.read(MAX_DECOMPRESSED_BYTES + 1)
        except _zstd.ZstdError as exc:
            raise PayloadError(400, [f"Invalid zstd1 body: {exc}"]) from exc
    if len(body) > MAX_DECOMPRESSED_BYTES:
        raise PayloadError(413, ["Payload too large"])
    return body


def parse_json(body: bytes) -> Any:
    """JSON text to Python, 400 on anything that is not JSON."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(400, [f"Malformed JSON: {exc}"]) from exc


def validate(document: Any, version: str) -> OpenApiModel:
    """Deserialize into the official model for ``version`` ("v1" or "v2"); 400 on any problem."""
    model_class = MetricPayload if version == "v2" else MetricsPayload
    try:
        model = validate_and_convert_types(
            document, (model_class,), ["body"], True, True, configuration=_CONFIG
        )
    except Exception as exc:  # ApiTypeError, ApiValueError, TypeError from the constructors
        raise PayloadError(400, [f"body: {_readable(exc)}"]) from exc
    problems = _problems(model, "body")
    if not isinstance(model, model_class):
        problems.append(f"body: expected a {model_class.__name__} object")
    if not problems and version == "v2":
        problems += _v2_point_rules(document)
    if problems:
        raise PayloadError(400, problems)
    return model


def _v2_point_rules(document: dict[str, Any]) -> list[str]:
    """The model marks ``timestamp`` and ``value`` optional, but its own description of
    ``MetricSeries.points`` says "All points must be objects with timestamp and a
    scalar value"; a point without either cannot be stored, so it is a 400 here."""
    found = []
    for s_index, series in enumerate(document.get("series") or ()):
        for p_index, point in enumerate(series.get("points") or ()):
            for key in ("timestamp", "value"):
                if key not in point:
                    found.append(f"body.series[{s_index}].points[{p_index}]: missing {key}")
    return found


def _readable(exc: Exception) -> str:
    text = str(exc)
    if "argument after ** must be a mapping" in text:
        # the deserializer tried to keep a non-object list item as an UnparsedObject
        return f"a list item has the wrong type ({text.rsplit(',', 1)[-1].strip()})"
    return text


def _nullable(types: tuple[Any, ...]) -> bool:
    return none_type in types


def _why_unparsed(raw: Any, types: tuple[Any, ...], path: str) -> list[str]:
    """Deserialize a rejected list item on its own to learn why it was rejected."""
    try:
        again = validate_and_convert_types(raw, types, [path], True, True, configuration=_CONFIG)
    except Exception as exc:  # noqa: BLE001 - the library raises many kinds; each is a 400
        return [f"{path}: {_readable(exc)}"]
    return _problems(again, path) or [f"{path}: does not match the schema"]


def _problems(value: Any, path: str, item_types: tuple[Any, ...] | None = None) -> list[str]:
    """Every place in a deserialized model the lenient deserializer let through."""
    if isinstance(value, UnparsedObject):
        if item_types is not None:
            return _why_unparsed(dict(value._data_store), item_types, path)
        return [f"{path}: does not match the schema"]
    if isinstance(value, list):
        found: list[str] = []
        for index, item in enumerate(value):
            found += _problems(item, f"{path}[{index}]", item_types)
        return found
    if isinstance(value, ModelSimple):
        if getattr(value, "_unparsed", False):
            allowed = sorted(getattr(value, "allowed_values", ()), key=str)
            return [f"{path}: {value.value!r} is not one of {allowed}"]
        return []
    if isinstance(value, ModelNormal):
        found = []
        for name, attr in value._data_store.items():
            types = value.openapi_types.get(name)
            if types is None:
                continue  # an additional property: the real intake ignores unknown keys
            where = f"{path}.{name}"
            if attr is None:
                if not _nullable(types):
                    found.append(f"{where}: must not be null")
                continue
            inner = tuple(types[0]) if types and isinstance(types[0], list) else None
            found += _problems(attr, where, inner)
        if not found and getattr(value, "_unparsed", False):
            found.append(f"{path}: does not match the schema")
        return found
    return []


@dataclass(frozen=True)
class SubmittedPoint:
    """One point as the intake read it, before the timestamp window is applied."""

    metric: str
    timestamp: int
    value: float | None
    tags: tuple[str, ...]
    resources: tuple[tuple[str, str], ...]  # (type, name), e.g. ("host", "pi-hall")
    type: str
    interval: int | None


def points_v2(document: dict[str, Any]) -> list[SubmittedPoint]:
    """Points of a validated v2 body.

    Shape: ``{"series": [{"metric", "points": [{timestamp, value}]}]}``.
    """
    found = []
    for series in document["series"]:
        tags = tuple(sorted(series.get("tags") or ()))
        resources = tuple(
            sorted((r.get("type", ""), r.get("name", "")) for r in series.get("resources") or ())
        )
        kind = V2_TYPES.get(series.get("type", 0), "unspecified")
        for point in series["points"]:
            found.append(
                SubmittedPoint(
                    metric=series["metric"],
                    timestamp=int(point["timestamp"]),
                    value=float(point["value"]),
                    tags=tags,
                    resources=resources,
                    type=kind,
                    interval=series.get("interval"),
                )
            )
    return found


def points_v1(document: dict[str, Any]) -> list[SubmittedPoint]:
    """Points of a validated v1 body (``points: [[ts, value], ...]``, ``host`` a resource)."""
    found = []
    for series in document["series"]:
        tags = tuple(sorted(series.get("tags") or ()))
        host = series.get("host")
        resources = (("host", host),) if host else ()
        for point in series.get("points") or ():
            ts, value = ([*list(point), None, None])[:2]
            if ts is None:
                continue
            found.append(
                SubmittedPoint(
                    metric=series["metric"],
                    timestamp=int(ts),
                    value=None if value is None else float(value),
                    tags=tags,
                    resources=resources,
                    type=series.get("type") or "gauge",
                    interval=series.get("interval"),
                )
            )
    return found


def series_count(document: Any) -> int:
    """Number of series in a (possibly invalid) body, for the request log."""
    if isinstance(document, dict) and isinstance(document.get("series"), list):
        return len(document["series"])
    return 0
