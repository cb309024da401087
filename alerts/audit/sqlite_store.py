"""The embedded audit store: one SQLite file, WAL journal, ``synchronous=FULL``.

Why these pragmas: with WAL and ``synchronous=FULL`` every commit fsyncs the WAL before
returning, so an append that returned survives a crash or power cut (``NORMAL`` could lose the
last commits on power loss; ``bench/audit_store.py`` measures what FULL costs). Writers take the
database's write lock at ``BEGIN IMMEDIATE``, so two processes appending to one file are
serialized rather than failing half-way; ``busy_timeout`` makes the second one wait (up to
:data:`BUSY_TIMEOUT_MS`). Readers never block writers (WAL).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from alerts.audit.checkpoints import SigningKey
from alerts.audit.schema import BLOB_TYPE, DDL
from alerts.audit.store import AuditStore, Tx

__all__ = ["BUSY_TIMEOUT_MS", "SqliteAuditStore", "sqlite_path"]

BUSY_TIMEOUT_MS = 30_000
MEMORY = ":memory:"


def sqlite_path(url: str) -> str:
    """``sqlite:///abs/path.db`` -> ``/abs/path.db``; ``sqlite:///~/x.db`` expands ``~``;
    ``sqlite://`` or ``sqlite:///:memory:`` -> an in-memory database (tests)."""
    if not url.startswith("sqlite://"):
        raise ValueError(f"not a sqlite URL: {url!r}")
    rest = url[len("sqlite://"):]
    if rest in ("", "/", "/" + MEMORY):
        return MEMORY
    if rest.startswith("/~"):
        return str(Path(rest[1:]).expanduser())
    if not rest.startswith("/"):
        raise ValueError(f"{url!r}: use sqlite:///absolute/path.db (three slashes)")
    return rest


class SqliteAuditStore(AuditStore):
    """:class:`AuditStore` on one SQLite file (or ``:memory:``)."""

    def __init__(self, path: str, *, key: SigningKey, keep_evidence: bool = True,
                 synchronous: str = "FULL", clock: Callable[[], float] = time.time) -> None:
        super().__init__(key=key, keep_evidence=keep_evidence, clock=clock)
        self.path = path
        if path != MEMORY:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are ours (BEGIN IMMEDIATE ... COMMIT).
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                     timeout=BUSY_TIMEOUT_MS / 1000)
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if path != MEMORY:
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"{path}: SQLite refused WAL journal mode ({mode})")
        self._conn.execute(f"PRAGMA synchronous = {synchronous}")
        self._conn.execute("PRAGMA foreign_keys = ON")
        with self._write() as tx:
            for statement in DDL:
                tx.execute(statement.format(blob=BLOB_TYPE))
        self._init()

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Tx]:
        cursor = self._conn.cursor()
        cursor.execute(begin)
        try:
            yield Tx(cursor, "?")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")
        finally:
            cursor.close()

    def _write(self) -> AbstractContextManager[Tx]:
        return self._transaction("BEGIN IMMEDIATE")

    def _read(self) -> AbstractContextManager[Tx]:
        return self._transaction("BEGIN")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
