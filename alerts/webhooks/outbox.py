"""The persistent outbox: every accepted warning until it is delivered or given up, in SQLite.

One row per ``webhook-id`` (the primary key is the idempotency: accepting the same id twice
is a no-op), with the exact body bytes to send, the attempts made and when the next one is
due. An attempt is written down *before* it is sent (attempt count up, next attempt already
scheduled), so a dispatcher killed mid-attempt resumes after restart at the scheduled retry,
with the same id and body. Endpoints a host disabled with ``410 Gone`` are kept too.

WAL journal, ``synchronous=NORMAL``: each accepted warning is a short transaction without an
fsync (the caller is the event loop), which survives the process being killed; a power cut may
lose the last few, which a replay of the escalations topic restores under the same ids. One
dispatcher per file; a lock makes the connection safe to share with a metrics scrape thread.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DeliveryState = Literal["pending", "delivered", "failed", "disabled", "refused"]
FINAL_STATES: tuple[DeliveryState, ...] = ("delivered", "failed", "disabled", "refused")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    webhook_id      TEXT PRIMARY KEY,
    room_id         TEXT NOT NULL,
    body            BLOB NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'failed', 'disabled', 'refused')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL,
    next_attempt_at REAL,
    finished_at     REAL,
    url             TEXT,
    last_status     INTEGER,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_finished ON deliveries (finished_at)
    WHERE state != 'pending';
CREATE TABLE IF NOT EXISTS disabled_endpoints (
    url         TEXT PRIMARY KEY,
    disabled_at REAL NOT NULL,
    webhook_id  TEXT,
    status      INTEGER
);
"""
_COLUMNS = ("webhook_id, room_id, body, state, attempts, created_at, next_attempt_at, "
            "finished_at, url, last_status, last_error")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox row (see the table above)."""

    webhook_id: str
    room_id: str
    body: bytes
    state: DeliveryState
    attempts: int
    created_at: float
    next_attempt_at: float | None
    finished_at: float | None
    url: str | None
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DisabledEndpoint:
    """An endpoint that answered ``410 Gone``: nothing more is sent to it."""

    url: str
    disabled_at: float
    webhook_id: str | None
    status: int | None


class Outbox:
    """The SQLite outbox at ``path`` (created, with its directory, if missing)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                   timeout=5.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, webhook_id: str, room_id: str, body: bytes, *, now: float,
            due_at: float | None = None) -> bool:
        """Accept a delivery, first attempt due at ``due_at`` (default ``now``); False (and
        nothing changed) if the id is known."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO deliveries (webhook_id, room_id, body, created_at, "
                "next_attempt_at) VALUES (?, ?, ?, ?, ?)",
                (webhook_id, room_id, body, now, now if due_at is None else due_at))
            return cur.rowcount == 1

    def get(self, webhook_id: str) -> Delivery | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM deliveries WHERE webhook_id = ?",
                                   (webhook_id,)).fetchone()
        return None if row is None else Delivery(*row)

    def due(self, now: float, *, limit: int, exclude: Iterable[str] = ()) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, earliest first (``exclude``: in flight)."""
        skip = set(exclude)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM deliveries WHERE state = 'pending' AND "
                f"next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
                (now, limit + len(skip))).fetchall()
        return [Delivery(*row) for row in rows if row[0] not in skip][:limit]

    def next_due_at(self, *, exclude: Iterable[str] = ()) -> float | None:
        """When the earliest pending delivery not in ``exclude`` is due (None: none pending)."""
        skip = set(exclude)
        with self._lock:
            rows = self._db.execute(
                "SELECT webhook_id, next_attempt_at FROM deliveries WHERE state = 'pending' "
                "ORDER BY next_attempt_at LIMIT ?", (len(skip) + 1,)).fetchall()
        return next((at for wid, at in rows if wid not in skip), None)

    def begin_attempt(self, webhook_id: str, *, url: str, retry_at: float) -> int:
        """Write an attempt down before sending it: count it, schedule its retry. Returns the
        attempt number (1 = first)."""
        with self._lock:
            updated = self._db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, url = ? "
                "WHERE webhook_id = ? AND state = 'pending'",
                (retry_at, url, webhook_id)).rowcount
            row = self._db.execute("SELECT attempts FROM deliveries WHERE webhook_id = ?",
                                   (webhook_id,)).fetchone()
        if not updated or row is None:
            raise KeyError(f"no pending delivery {webhook_id!r} in the outbox")
        return int(row[0])

    def reschedule(self, webhook_id: str, *, at: float, status: int | None,
                   error: str) -> None:
        """A failed attempt that will be retried at ``at``."""
        with self._lock:
            self._db.execute(
                "UPDATE deliveries SET next_attempt_at = ?, last_status = ?, last_error = ? "
                "WHERE webhook_id = ? AND state = 'pending'", (at, status, error, webhook_id))

    def finish(self, webhook_id: str, state: DeliveryState, *, now: float,
               status: int | None = None, error: str = "") -> None:
        """End a delivery: ``delivered``, ``failed`` (attempts used up), ``disabled`` (its
        endpoint answered 410, now or before) or ``refused`` (internal address)."""
        if state not in FINAL_STATES:
            raise ValueError(f"{state!r} is not a final state ({', '.join(FINAL_STATES)})")
        with self._lock:
            self._db.execute(
                "UPDATE deliveries SET state = ?, finished_at = ?, next_attempt_at = NULL, "
                "last_status = ?, last_error = ? WHERE webhook_id = ?",
                (state, now, status, error or None, webhook_id))

    def disable_endpoint(self, url: str, *, now: float, webhook_id: str | None,
                         status: int | None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO disabled_endpoints (url, disabled_at, webhook_id, status) "
                "VALUES (?, ?, ?, ?)", (url, now, webhook_id, status))

    def is_disabled(self, url: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM disabled_endpoints WHERE url = ?",
                                    (url,)).fetchone() is not None

    def disabled_endpoints(self) -> list[DisabledEndpoint]:
        with self._lock:
            rows = self._db.execute("SELECT url, disabled_at, webhook_id, status FROM "
                                    "disabled_endpoints ORDER BY disabled_at").fetchall()
        return [DisabledEndpoint(*row) for row in rows]

    def enable_endpoint(self, url: str) -> bool:
        """Forget that ``url`` was disabled (the host asked again); True if it was."""
        with self._lock:
            return self._db.execute("DELETE FROM disabled_endpoints WHERE url = ?",
                                    (url,)).rowcount == 1

    def counts(self) -> dict[str, int]:
        """Deliveries per state (every state present, 0 when none)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state, COUNT(*) FROM deliveries GROUP BY state").fetchall()
        found = dict(rows)
        return {state: int(found.get(state, 0)) for state in ("pending", *FINAL_STATES)}

    def pending_count(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'").fetchone()
        return int(row[0])

    def prune(self, *, finished_before: float) -> int:
        """Delete finished deliveries older than ``finished_before``; how many were deleted.
        Their ids are then forgotten (a later submit of one would be sent again)."""
        with self._lock:
            return self._db.execute(
                "DELETE FROM deliveries WHERE state != 'pending' AND finished_at < ?",
                (finished_before,)).rowcount
