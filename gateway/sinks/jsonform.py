"""One JSON form of a reading, for every sink and command that writes one.

`{"metric": "plug.power", "value": 38.0, "ts": 1763634900.123, "type": "gauge",
"unit": "W", "tags": {...}, "priority": "normal"}`, and `rollup` (samples, min,
max, last, until) on a compacted row: `Row.as_dict()`, the same in the file
sink, the MQTT sink, `gateway decode` and `gateway store export`.

Building each whole costs more than publishing it on a Pi, so what every
reading of a series shares is cached: a payload is two numbers between cached
bytes.
"""

from __future__ import annotations

import orjson

from gateway.model import Row


def reading_json(row: Row) -> bytes:
    """The reading as JSON (built whole: for compacted rows and one-offs)."""
    return orjson.dumps(row.as_dict())


class _Series:
    """A series' JSON around the value and time."""

    __slots__ = ("head", "middle", "tail")

    def __init__(self, row: Row) -> None:
        whole = reading_json(row)
        value, ts = orjson.dumps(row.value), orjson.dumps(row.ts)
        # {"metric":…,"value":V,"ts":T,"type":… — the order as_dict gives.
        head, _, rest = whole.partition(b',"value":' + value + b',"ts":' + ts)
        self.head = head + b',"value":'
        self.middle = b',"ts":'
        self.tail = rest


class JsonForm:
    """Encodes rows as `reading_json` does, caching per series (bounded)."""

    def __init__(self, limit: int = 100000) -> None:
        self.limit = limit
        self._series: dict[int, _Series] = {}

    def encode(self, row: Row) -> bytes:
        if row.rollup is not None:
            return reading_json(row)
        known = self._series.get(row.series)
        if known is None:
            if len(self._series) >= self.limit:
                self._series.clear()
            known = self._series[row.series] = _Series(row)
        return (known.head + orjson.dumps(row.value) + known.middle + orjson.dumps(row.ts)
                + known.tail)
