"""InfluxDB line protocol, as InfluxDB 1.x/2.x, VictoriaMetrics, Telegraf and QuestDB read it.

A metric `plug.power` becomes measurement `plug`, field `power` (split at the
last dot), so InfluxDB shows measurement plug with field power and
VictoriaMetrics names the series `plug_power`. A metric without a dot gets the
field `value`. Timestamps are milliseconds (write with precision=ms).
"""

from __future__ import annotations

import math

from gateway.model import SeriesInfo

_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n", "\\": "\\\\"})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\\": "\\\\"})


def split_metric(metric: str) -> tuple[str, str]:
    measurement, dot, fieldname = metric.rpartition(".")
    if not dot or not measurement or not fieldname:
        return metric, "value"
    return measurement, fieldname


def series_prefix(info: SeriesInfo) -> str:
    """Everything before the value: `measurement,tag=v field=`."""
    measurement, fieldname = split_metric(info.metric)
    parts = [measurement.translate(_MEASUREMENT)]
    for key in sorted(info.tags):
        value = info.tags[key]
        if value == "" or key == "":
            continue  # line protocol has no empty tag values
        parts.append(f"{key.translate(_KEY)}={str(value).translate(_KEY)}")
    return ",".join(parts) + " " + fieldname.translate(_KEY) + "="


def format_value(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be written in line protocol")
    return repr(float(value))


def line(prefix: str, value: float, ts_ms: int) -> str:
    return f"{prefix}{format_value(value)} {ts_ms}"
