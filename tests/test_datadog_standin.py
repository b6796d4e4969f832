"""The Datadog intake stand-in enforces what the real intake documents."""

from __future__ import annotations

import gzip
import json
import socket
import time
import urllib.error
import urllib.request
import zlib
from typing import Any

import pytest
from standins.datadog_intake import DatadogIntake

NOW = 1_700_000_000


def post(
    intake: DatadogIntake,
    body: bytes | dict[str, Any] | list[Any],
    *,
    path: str = "/api/v2/series",
    encoding: str | None = None,
    api_key: str | None = "use-intake-key",
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], Any]:
    """POST like a Datadog client: JSON, optional compression, DD-API-KEY header."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if encoding == "deflate":
        data = zlib.compress(data)
    elif encoding == "gzip":
        data = gzip.compress(data)
    if encoding:
        headers["Content-Encoding"] = encoding
    if api_key == "use-intake-key":
        api_key = intake.api_key
    if api_key is not None:
        headers["DD-API-KEY"] = api_key
    req = urllib.request.Request(intake.url + path, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


def v2_body(
    metric: str = "plug.power",
    points: list[tuple[int, float]] | None = None,
    tags: list[str] | None = None,
    host: str = "pi-hall",
    type_: int = 3,
) -> dict[str, Any]:
    return {
        "series": [
            {
                "metric": metric,
                "type": type_,
                "points": [{"timestamp": ts, "value": v} for ts, v in (points or [(NOW, 5.0)])],
                "tags": tags if tags is not None else ["device:plug1", "gateway:hall"],
                "resources": [{"name": host, "type": "host"}],
                "unit": "watt",
            }
        ]
    }


@pytest.fixture
def intake(datadog_intake: DatadogIntake) -> DatadogIntake:
    datadog_intake.set_time(NOW)
    return datadog_intake


# -- authentication ------------------------------------------------------------------------
@pytest.mark.parametrize("key", [None, "wrong-key", ""])
def test_missing_or_wrong_api_key_is_403(intake: DatadogIntake, key: str | None):
    status, _, body = post(intake, v2_body(), api_key=key)
    assert (status, body) == (403, {"errors": ["Forbidden"]})
    assert intake.points("plug.power") == []


# -- accepted payloads ---------------------------------------------------------------------
@pytest.mark.parametrize("encoding", [None, "deflate", "gzip"])
def test_valid_v2_is_202_and_stored(intake: DatadogIntake, encoding: str | None):
    status, _, body = post(intake, v2_body(points=[(NOW - 10, 4.0), (NOW, 5.0)]), encoding=encoding)
    assert (status, body) == (202, {"errors": []})
    tags = ("device:plug1", "gateway:hall", "host:pi-hall")
    assert intake.points("plug.power") == [(NOW - 10, 4.0, tags), (NOW, 5.0, tags)]
    [series] = intake.series()
    assert series["type"] == "gauge" and series["resources"] == [
        {"type": "host", "name": "pi-hall"}
    ]
    [record] = intake.requests
    assert (record.path, record.status, record.series, record.points) == (
        "/api/v2/series",
        202,
        1,
        2,
    )
    assert record.headers.get("Content-Encoding") == encoding
    assert record.decompressed_size == len(
        json.dumps(v2_body(points=[(NOW - 10, 4.0), (NOW, 5.0)]))
    )


def test_valid_v1_is_202_status_ok_and_stored(intake: DatadogIntake):
    body = {
        "series": [
            {
                "metric": "plug.power",
                "points": [[NOW, 7]],
                "type": "gauge",
                "host": "pi-hall",
                "tags": ["device:plug1"],
            }
        ]
    }
    status, _, answer = post(intake, body, path="/api/v1/series", encoding="deflate")
    assert (status, answer) == (202, {"status": "ok"})
    assert intake.points("plug.power") == [(NOW, 7.0, ("device:plug1", "host:pi-hall"))]


def test_a_payload_just_under_the_limit_is_accepted(intake: DatadogIntake):
    points = [(NOW - i, float(i)) for i in range(3000)]
    body = json.dumps(v2_body(points=points)).encode()
    body = body + b" " * (512_000 - len(body))  # exactly 500 KiB of valid JSON
    status, _, _ = post(intake, body)
    assert status == 202
    assert len(intake.points("plug.power")) == 3000


# -- rejected payloads ---------------------------------------------------------------------
def _v2_point(**point: Any) -> dict[str, Any]:
    return {"series": [{"metric": "m", "points": [point]}]}


@pytest.mark.parametrize(
    "body, fragment",
    [
        (_v2_point(timestamp=NOW, value="5"), "Required value type is float"),
        (_v2_point(timestamp=str(NOW), value=5), "Required value type is int"),
        (_v2_point(timestamp=NOW, value=None), "must not be null"),
        (_v2_point(timestamp=NOW), "missing value"),
        ({"series": [{"metric": "m"}]}, "'points'"),
        (
            {"series": [{"metric": "m", "type": 9, "points": [{"timestamp": NOW, "value": 1}]}]},
            "9 is not one of [0, 1, 2, 3]",
        ),
        (
            {"series": [{"metric": "m", "tags": [1], "points": [{"timestamp": NOW, "value": 1}]}]},
            "wrong type",
        ),
        ({"metrics": []}, "'series'"),
        ([], "'series'"),
        (b'{"series": [', "Malformed JSON"),
    ],
)
def test_v2_body_the_official_model_rejects_is_400(intake: DatadogIntake, body: Any, fragment: str):
    status, _, answer = post(intake, body)
    assert status == 400
    assert any(fragment in error for error in answer["errors"]), answer
    assert intake.stored_point_count() == 0
    assert intake.requests[-1].errors == answer["errors"]


@pytest.mark.parametrize(
    "series",
    [
        {"metric": "m", "points": [[NOW, "5"]]},
        {"metric": "m", "points": [[NOW, 5, 6]]},
        {"metric": "m"},
        {"metric": 3, "points": [[NOW, 5]]},
    ],
)
def test_v1_body_the_official_model_rejects_is_400(intake: DatadogIntake, series: dict[str, Any]):
    status, _, answer = post(intake, {"series": [series]}, path="/api/v1/series")
    assert status == 400 and answer["errors"]


def test_over_500_KiB_on_the_wire_is_413(intake: DatadogIntake):
    points = [(NOW - i % 3000, float(i)) for i in range(12_000)]
    body = json.dumps(v2_body(points=points)).encode()
    assert len(body) > 512_000
    status, _, answer = post(intake, body)
    assert (status, answer) == (413, {"errors": ["Payload too large"]})
    # the same points compressed are well under the limit
    assert post(intake, body, encoding="deflate")[0] == 202


def test_over_5_MiB_decompressed_is_413(intake: DatadogIntake):
    body = json.dumps(v2_body()).encode()
    body = body + b" " * (5_242_880 + 1 - len(body))
    assert len(zlib.compress(body)) < 512_000
    assert post(intake, body, encoding="deflate")[0] == 413
    assert post(intake, body[:-1], encoding="deflate")[0] == 202


@pytest.mark.parametrize("path, encoding", [("/api/v2/series", "br"), ("/api/v1/series", "zstd1")])
def test_undocumented_content_encoding_is_400(intake: DatadogIntake, path: str, encoding: str):
    req = urllib.request.Request(
        intake.url + path,
        data=b"{}",
        method="POST",
        headers={"DD-API-KEY": intake.api_key, "Content-Encoding": encoding},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 400


# -- what is stored ------------------------------------------------------------------------
def test_points_outside_the_time_window_are_accepted_but_dropped(intake: DatadogIntake):
    points = [(NOW - 3601, 1.0), (NOW - 3600, 2.0), (NOW + 600, 3.0), (NOW + 601, 4.0)]
    status, _, _ = post(intake, v2_body(points=points))
    assert status == 202
    assert [p[:2] for p in intake.points("plug.power")] == [(NOW - 3600, 2.0), (NOW + 600, 3.0)]
    assert intake.dropped_points == 2
    assert sorted(d.reason for d in intake.dropped) == ["too_far_in_future", "too_old"]


def test_historical_metrics_keep_old_points(intake: DatadogIntake):
    intake.historical_metrics.add("plug.energy")
    post(intake, v2_body(metric="plug.energy", points=[(NOW - 86_400, 1.0)]))
    post(intake, v2_body(metric="plug.power", points=[(NOW - 86_400, 1.0)]))
    assert [p[:2] for p in intake.points("plug.energy")] == [(NOW - 86_400, 1.0)]
    assert intake.points("plug.power") == []
    assert intake.dropped_points == 1


def test_the_clock_defaults_to_real_time(intake: DatadogIntake):
    intake.set_time(None)
    now = int(time.time())
    post(intake, v2_body(points=[(now - 4000, 1.0), (now - 5, 2.0)]))
    assert [p[:2] for p in intake.points("plug.power")] == [(now - 5, 2.0)]


def test_one_point_per_series_per_second(intake: DatadogIntake):
    post(intake, v2_body(points=[(NOW, 1.0), (NOW, 2.0)]))
    post(intake, v2_body(points=[(NOW, 3.0)]))
    post(intake, v2_body(points=[(NOW, 9.0)], tags=["device:plug2"]))
    by_tags = {p[2]: p[1] for p in intake.points("plug.power")}
    assert by_tags == {
        ("device:plug1", "gateway:hall", "host:pi-hall"): 3.0,
        ("device:plug2", "host:pi-hall"): 9.0,
    }
    assert intake.overwritten_points == 2


def test_reset_forgets_everything(intake: DatadogIntake):
    post(intake, v2_body())
    intake.fail_next(500)
    intake.reset()
    assert (intake.points("plug.power"), intake.requests, intake.dropped_points) == ([], [], 0)
    assert post(intake, v2_body())[0] == 202


# -- fault injection -----------------------------------------------------------------------
def test_fail_next_429_sends_datadog_rate_limit_headers(intake: DatadogIntake):
    intake.fail_next(429)
    status, headers, body = post(intake, v2_body())
    assert status == 429 and body == {"errors": ["Too Many Requests"]}
    assert headers["X-RateLimit-Reset"] == "2" and headers["X-RateLimit-Remaining"] == "0"
    assert intake.points("plug.power") == []
    assert post(intake, v2_body())[0] == 202  # only the next one failed
    assert [r.status for r in intake.requests] == [429, 202]


def test_fail_next_with_retry_after_and_count(intake: DatadogIntake):
    intake.fail_next(429, count=2, headers={"Retry-After": "2"})
    for _ in range(2):
        status, headers, _ = post(intake, v2_body())
        assert status == 429 and headers["Retry-After"] == "2"
    assert post(intake, v2_body())[0] == 202


@pytest.mark.parametrize("status", [500, 503, 413, 408])
def test_fail_next_any_status(intake: DatadogIntake, status: int):
    intake.fail_next(status, body={"errors": ["boom"]})
    assert post(intake, v2_body())[:3:2] == (status, {"errors": ["boom"]})
    assert intake.stored_point_count() == 0


def test_hang_next_times_the_client_out_but_may_still_store(intake: DatadogIntake):
    intake.hang_next(0.6)
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        post(intake, v2_body(), timeout=0.2)
    deadline = time.monotonic() + 5
    while not intake.points("plug.power") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(intake.points("plug.power")) == 1  # at-least-once: a resend would duplicate
    assert post(intake, v2_body(), timeout=2)[0] == 202
