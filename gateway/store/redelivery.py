"""Dead letters put back in their sink's queue, once what refused them is fixed.

A sink's cursor has long passed a dead letter's row, and the other sinks had it
already, so a dead letter is not written back as a new reading: it is listed in
`redeliver`, and that sink's forwarder sends the listed ones before anything
after its cursor. Delivered, a dead letter is gone and no longer counted as
given up (its `losses` count goes down by the readings it held); refused again,
it stays a dead letter with the new reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.model import Row
from gateway.store.outbox import Outbox
from gateway.store.schema import add_loss, transaction


def queue(outbox: Outbox, sink: str, reason: str | None = None, since_ms: int | None = None,
          until_ms: int | None = None) -> tuple[int, int]:
    """Put `sink`'s dead letters (of `reason`, with readings from `since_ms` to before
    `until_ms`) back in its queue. Returns (rows, readings) queued now."""
    where, params = ["sink = ?"], [sink]
    if reason is not None:
        where.append("reason = ?")
        params.append(reason)
    if since_ms is not None:
        where.append("ts >= ?")
        params.append(since_ms)
    if until_ms is not None:
        where.append("ts < ?")
        params.append(until_ms)
    clause = " AND ".join(where)
    with transaction(outbox.conn):
        rows, readings = outbox.conn.execute(
            f"SELECT count(*), coalesce(sum(samples), 0) FROM dead_letters WHERE {clause} "
            "AND id NOT IN (SELECT dead_id FROM redeliver)", params).fetchone()
        outbox.conn.execute(f"INSERT OR IGNORE INTO redeliver (dead_id, sink) "
                            f"SELECT id, sink FROM dead_letters WHERE {clause}", params)
    return int(rows), int(readings)


def waiting(outbox: Outbox, sink: str) -> bool:
    """Whether dead letters wait to be sent to `sink` again."""
    return outbox.conn.execute("SELECT 1 FROM redeliver WHERE sink = ? LIMIT 1",
                               (sink,)).fetchone() is not None


def fetch(outbox: Outbox, sink: str, limit: int) -> list[Row]:
    """The next queued dead letters as rows, oldest reading first. A row's id is the dead
    letter's id, negated: it is no place in the sink's cursor's sequence."""
    found = outbox.conn.execute(
        "SELECT d.id, d.series, d.ts, d.value FROM redeliver q JOIN dead_letters d "
        "ON d.id = q.dead_id WHERE q.sink = ? ORDER BY d.ts, d.id LIMIT ?",
        (sink, limit)).fetchall()
    if not found:
        # Queued ones whose dead letter is gone (evicted meanwhile): nothing to send.
        with outbox.conn:
            outbox.conn.execute("DELETE FROM redeliver WHERE sink = ? AND dead_id NOT IN "
                                "(SELECT id FROM dead_letters)", (sink,))
    return [Row(-dead_id, sid, ts, value, outbox.series_info(sid))
            for dead_id, sid, ts, value in found]


def finish(outbox: Outbox, sink: str, delivered: Sequence[Row],
           refused: dict[str, list[Row]]) -> int:
    """Record a redelivery: delivered dead letters are deleted and no longer counted as
    given up; refused ones stay, under their new reason. Returns readings delivered."""
    conn = outbox.conn
    back = 0
    now = outbox.clock.now()
    with transaction(conn):
        again = [(reason, r) for reason, rows in refused.items() for r in rows]
        for new_reason, r in [(None, r) for r in delivered] + again:
            dead_id = -r.id
            conn.execute("DELETE FROM redeliver WHERE dead_id = ?", (dead_id,))
            found = conn.execute("SELECT reason, samples FROM dead_letters WHERE id = ?",
                                 (dead_id,)).fetchone()
            if found is None:
                continue  # evicted while in flight
            reason, samples = found[0], int(found[1])
            priority = r.info.priority
            if new_reason is None:
                conn.execute("DELETE FROM dead_letters WHERE id = ?", (dead_id,))
                add_loss(conn, reason, sink, -samples, priority)
                back += samples
            else:
                conn.execute("UPDATE dead_letters SET reason = ?, at = ? WHERE id = ?",
                             (new_reason, now, dead_id))
                if new_reason != reason:
                    add_loss(conn, reason, sink, -samples, priority)
                    add_loss(conn, new_reason, sink, samples, priority)
        conn.execute("DELETE FROM losses WHERE count <= 0")
    return back
