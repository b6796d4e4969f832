"""The alerts' own SQLite file (`data_dir/alerts.db`): monitor states, alerts, the
notification outbox and every attempt to deliver one.

A file of its own, not tables in the readings store: the store has one writer
(the ingest thread) and its own bounds and recovery, and alerts must be
recorded while the store is full or being recovered. Three writers share this
one (the monitors' thread, the sender's, and `gateway alerts ack` from a
shell); WAL mode and a busy timeout let them take turns.

What is promised: a change of status, the alert it opens or closes and the
notifications it queues are one transaction, so a restart neither repeats a
notification nor forgets an open alert. A notification is marked sent only
after the channel took it: a crash between the two sends it again (twice, never
none).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

FILE = "alerts.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS monitor_state (
    monitor TEXT NOT NULL, grp TEXT NOT NULL, status TEXT NOT NULL, since REAL NOT NULL,
    value REAL, tags TEXT NOT NULL DEFAULT '[]', notified_at REAL,
    muted_by TEXT, escalated INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (monitor, grp));
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY, monitor TEXT NOT NULL, grp TEXT NOT NULL, status TEXT NOT NULL,
    opened REAL NOT NULL, closed REAL, value REAL, acked_by TEXT, acked_at REAL,
    ack_via TEXT);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (monitor, grp) WHERE closed IS NULL;
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY, alert_id INTEGER, monitor TEXT NOT NULL, grp TEXT NOT NULL,
    transition TEXT NOT NULL, person TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
    created REAL NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL, sent_at REAL, channel INTEGER, error TEXT);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (next_try)
    WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY, notification_id INTEGER NOT NULL, at REAL NOT NULL,
    channel INTEGER NOT NULL, service TEXT NOT NULL, ok INTEGER NOT NULL, error TEXT);
"""

#: notification states: waiting to be sent (or retried), sent, given up, nobody to tell,
#: silenced by a downtime (recorded, never sent)
PENDING, SENT, FAILED, NOBODY, MUTED = "pending", "sent", "failed", "nobody", "muted"


@dataclass(frozen=True)
class StoredState:
    status: str
    since: float
    value: float | None
    tags: tuple[tuple[str, str], ...]
    notified_at: float | None
    muted_by: str | None = None
    escalated: int = 0


@dataclass(frozen=True)
class Outgoing:
    """A notification to queue: one person, one message."""

    person: str
    title: str
    body: str
    state: str = PENDING  # NOBODY, MUTED: recorded, not sent
    why: str = ""  # for NOBODY and MUTED: the reason, kept as the notice's error text


@dataclass(frozen=True)
class Due:
    id: int
    person: str
    title: str
    body: str
    attempts: int
    created: float


@dataclass(frozen=True)
class Alert:
    id: int
    monitor: str
    grp: str
    status: str
    opened: float
    closed: float | None
    value: float | None
    acked_by: str | None
    acked_at: float | None

    def summary(self) -> dict[str, object]:
        """An open alert as status, the alerts board and the demo show it."""
        return {"id": self.id, "monitor": self.monitor, "group": self.grp,
                "status": self.status, "since": self.opened, "value": self.value,
                "acked_by": self.acked_by}


class Journal:
    """One connection to alerts.db; safe to share between threads (calls are serialised)."""

    def __init__(self, data_dir: Path, readonly: bool = False) -> None:
        """`readonly`: for commands that only look (status, alerts list): nothing is
        created or written, so they work as a user who may only read."""
        self.path = data_dir / FILE
        self._lock = threading.RLock()
        if readonly:
            self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                        timeout=30, isolation_level=None,
                                        check_same_thread=False)
            return
        data_dir.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                    check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")  # an alert recorded is on the card
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    # -- monitor states ---------------------------------------------------------------

    def states(self) -> dict[tuple[str, str], StoredState]:
        with self._lock:
            rows = self.conn.execute("SELECT monitor, grp, status, since, value, tags, "
                                     "notified_at, muted_by, escalated FROM monitor_state"
                                     ).fetchall()
        return {(m, g): StoredState(s, since, v, tuple(tuple(t) for t in json.loads(tags)),
                                    n, mb, esc)
                for m, g, s, since, v, tags, n, mb, esc in rows}

    def record_transition(self, monitor: str, grp: str, status: str, at: float,
                          value: float | None, tags: Iterable[tuple[str, str]],
                          outgoing: Iterable[Outgoing], transition: str,
                          opens: bool, closes: bool, muted_by: str | None = None) -> int | None:
        """A group's new status, its alert opened or closed, and its notifications: one
        transaction. Returns the alert's id."""
        outgoing = list(outgoing)
        with self.transaction() as c:
            c.execute("INSERT INTO monitor_state (monitor, grp, status, since, value, tags, "
                      "notified_at, muted_by, escalated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0) "
                      "ON CONFLICT (monitor, grp) DO UPDATE SET status = excluded.status, "
                      "since = CASE WHEN excluded.status = 'OK' OR status = 'OK' "
                      "THEN excluded.since ELSE since END, "
                      "value = excluded.value, tags = excluded.tags, "
                      "notified_at = excluded.notified_at, muted_by = excluded.muted_by, "
                      "escalated = CASE WHEN excluded.status = 'OK' THEN 0 ELSE escalated END",
                      (monitor, grp, status, at, value, json.dumps(list(tags)), at, muted_by))
            alert = self._open_alert(c, monitor, grp)
            if opens and alert is None:
                alert = c.execute("INSERT INTO alerts (monitor, grp, status, opened, value) "
                                  "VALUES (?, ?, ?, ?, ?)",
                                  (monitor, grp, status, at, value)).lastrowid
            elif alert is not None:
                c.execute("UPDATE alerts SET status = ?, value = ?, closed = ? WHERE id = ?",
                          (status, value, at if closes else None, alert))
            self._queue(c, alert, monitor, grp, transition, outgoing, at)
            return alert

    def record_notice(self, monitor: str, grp: str, at: float, value: float | None,
                      outgoing: Iterable[Outgoing], transition: str,
                      muted_by: str | None = None, escalated: int | None = None) -> None:
        """A notice with no change of status: a reminder, an escalation step, the end of a
        downtime."""
        with self.transaction() as c:
            c.execute("UPDATE monitor_state SET notified_at = ?, value = ?, muted_by = ?, "
                      "escalated = coalesce(?, escalated) WHERE monitor = ? AND grp = ?",
                      (at, value, muted_by, escalated, monitor, grp))
            self._queue(c, self._open_alert(c, monitor, grp), monitor, grp, transition,
                        outgoing, at)

    @staticmethod
    def _open_alert(c: sqlite3.Connection, monitor: str, grp: str) -> int | None:
        row = c.execute("SELECT id FROM alerts WHERE monitor = ? AND grp = ? AND closed IS NULL",
                        (monitor, grp)).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _queue(c: sqlite3.Connection, alert: int | None, monitor: str, grp: str,
               transition: str, outgoing: Iterable[Outgoing], at: float) -> None:
        c.executemany(
            "INSERT INTO notifications (alert_id, monitor, grp, transition, person, title, "
            "body, created, state, next_try, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(alert, monitor, grp, transition, o.person, o.title, o.body, at, o.state, at,
              o.why or None) for o in outgoing])

    # -- the outbox -------------------------------------------------------------------

    def due(self, now: float, limit: int = 50) -> list[Due]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT id, person, title, body, attempts, created FROM notifications "
                "WHERE state = ? AND next_try <= ? ORDER BY id LIMIT ?",
                (PENDING, now, limit)).fetchall()
        return [Due(*row) for row in rows]

    def failing(self) -> tuple[int, float | None]:
        """Notices tried and not yet delivered: how many, and when the oldest was made."""
        with self._lock:
            n, at = self.conn.execute("SELECT count(*), min(created) FROM notifications "
                                      "WHERE state = ? AND attempts > 0", (PENDING,)).fetchone()
        return int(n), at

    def pending(self) -> int:
        with self._lock:
            (n,) = self.conn.execute("SELECT count(*) FROM notifications WHERE state = ?",
                                     (PENDING,)).fetchone()
        return int(n)

    def next_due(self) -> float | None:
        with self._lock:
            (at,) = self.conn.execute("SELECT min(next_try) FROM notifications "
                                      "WHERE state = ?", (PENDING,)).fetchone()
        return at

    def record_attempts(self, notification: int, at: float,
                        tries: Iterable[tuple[int, str, bool, str]],
                        state: str, next_try: float, channel: int | None,
                        error: str) -> None:
        """What one round of sending did: each channel tried (index, service, ok, error),
        and where the notification stands after it."""
        tries = list(tries)
        with self.transaction() as c:
            c.executemany("INSERT INTO attempts (notification_id, at, channel, service, ok, "
                          "error) VALUES (?, ?, ?, ?, ?, ?)",
                          [(notification, at, i, service, int(ok), err or None)
                           for i, service, ok, err in tries])
            c.execute("UPDATE notifications SET attempts = attempts + ?, state = ?, "
                      "next_try = ?, sent_at = ?, channel = ?, error = ? WHERE id = ?",
                      (len(tries), state, next_try, at if state == SENT else None, channel,
                       error or None, notification))

    # -- reading it back --------------------------------------------------------------

    def alerts(self, open_only: bool = True, since: float = 0.0) -> list[Alert]:
        where = "closed IS NULL" if open_only else "opened >= ? OR closed >= ?"
        args: tuple[float, ...] = () if open_only else (since, since)
        with self._lock:
            rows = self.conn.execute(
                "SELECT id, monitor, grp, status, opened, closed, value, acked_by, acked_at "
                f"FROM alerts WHERE {where} ORDER BY id", args).fetchall()
        return [Alert(*row) for row in rows]

    def notifications(self, alert: int | None = None, since: float = 0.0
                      ) -> list[dict[str, object]]:
        sql = ("SELECT id, alert_id, monitor, grp, transition, person, created, state, "
               "attempts, sent_at, channel, error FROM notifications WHERE created >= ?")
        args: list[object] = [since]
        if alert is not None:
            sql += " AND alert_id = ?"
            args.append(alert)
        with self._lock:
            cur = self.conn.execute(sql + " ORDER BY id", args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def attempts(self, notification: int) -> list[dict[str, object]]:
        with self._lock:
            cur = self.conn.execute("SELECT at, channel, service, ok, error FROM attempts "
                                    "WHERE notification_id = ? ORDER BY id", (notification,))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def acknowledge(self, alert: int, by: str, at: float, via: str) -> Alert | None:
        """Mark an open alert as taken in hand: no more reminders for it. None: no such
        open alert."""
        with self.transaction() as c:
            row = c.execute("SELECT id FROM alerts WHERE id = ? AND closed IS NULL",
                            (alert,)).fetchone()
            if row is None:
                return None
            c.execute("UPDATE alerts SET acked_by = ?, acked_at = ?, ack_via = ? "
                      "WHERE id = ? AND acked_at IS NULL", (by, at, via, alert))
        return next(a for a in self.alerts() if a.id == alert)

    def acked(self, monitor: str, grp: str) -> bool:
        with self._lock:
            row = self.conn.execute("SELECT acked_at FROM alerts WHERE monitor = ? AND grp = ? "
                                    "AND closed IS NULL", (monitor, grp)).fetchone()
        return row is not None and row[0] is not None
