"""The audit store on PostgreSQL (production): psycopg 3, the same tables and SQL as SQLite.

Only imported when a ``postgresql://`` URL is opened, so psycopg stays optional
(``pip install "psycopg[binary]"``). Differences from SQLite, all in this file:

- placeholders ``%s``; evidence bytes in ``BYTEA``;
- appends to one room are serialized by ``SELECT ... FOR UPDATE`` on the room's row (other
  rooms append in parallel); the statement after the lock sees every committed entry, so the
  ``(kind, event_id)`` duplicate check cannot miss a concurrent writer's commit;
- creating the schema holds a transaction-scoped advisory lock, because two processes running
  ``CREATE TABLE IF NOT EXISTS`` at once can still collide in PostgreSQL's catalog;
- durability is the server's: a commit returns after the WAL flush (``synchronous_commit=on``,
  the default; with ``off`` a crash may lose the last commits -- don't).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from alerts.audit.checkpoints import SigningKey
from alerts.audit.schema import DDL
from alerts.audit.store import AuditStore, Tx

__all__ = ["PostgresAuditStore"]

SCHEMA_LOCK = 0x524F4F4D  # "ROOM": advisory lock id held while creating the schema


class PostgresAuditStore(AuditStore):
    """:class:`AuditStore` on a PostgreSQL database named by a libpq URL."""

    for_update = " FOR UPDATE"

    def __init__(self, url: str, *, key: SigningKey, keep_evidence: bool = True,
                 clock: Callable[[], float] = time.time, connect_timeout_s: float = 10.0
                 ) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError('PostgreSQL audit store needs psycopg: pip install '
                               '"psycopg[binary]"') from exc
        super().__init__(key=key, keep_evidence=keep_evidence, clock=clock)
        self._conn: Any = psycopg.connect(url, autocommit=True,
                                          connect_timeout=max(1, int(connect_timeout_s)))
        with self._write() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(?::bigint)", (SCHEMA_LOCK,))
            for statement in DDL:
                tx.execute(statement.format(blob="BYTEA"))
        self._init()

    @contextmanager
    def _transaction(self) -> Iterator[Tx]:
        with self._conn.transaction(), self._conn.cursor() as cursor:
            yield Tx(cursor, "%s")

    def _write(self) -> AbstractContextManager[Tx]:
        return self._transaction()

    def _read(self) -> AbstractContextManager[Tx]:
        return self._transaction()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
