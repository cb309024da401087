"""The audit store: per-room append-only hash chains in SQL, signed checkpoints, evidence blobs.

:class:`AuditStore` holds everything that does not depend on the database; the SQLite and
PostgreSQL stores (:mod:`alerts.audit.sqlite_store`, :mod:`alerts.audit.postgres_store`) give
it a connection, a write transaction that serializes appends to a room, and a placeholder
style. It is synchronous; async callers use ``asyncio.to_thread``, and one store may be shared
by threads (calls are serialized by a lock).

Append (:meth:`append`) validates the whole batch first (a bad entry raises
:class:`AuditInputError` and nothing is written), then writes it in ONE transaction: each new
entry gets the room's next seq and ``prev_hash = head``; an entry whose ``(kind, event_id)`` is
already stored (or earlier in the batch) is skipped, so a Kafka redelivery is harmless. When
``append`` returns the transaction is committed (SQLite: WAL with ``synchronous=FULL``).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from alerts.audit.chain_check import ChainReport, verify_room
from alerts.audit.checkpoints import (
    Checkpoint,
    SigningKey,
)
from alerts.audit.entries import (
    WRITER_KINDS,
    AuditEntry,
    AuditInputError,
    StoredEntry,
    canonical_json,
    chain_hash,
    genesis_hash,
    normalize_data,
    sha256_hex,
)
from alerts.audit.schema import ENTRY_COLUMNS

__all__ = ["AuditStore", "ChainReport", "RoomState"]

Row = Sequence[Any]
PAGE = 2000
"""Entries read per query when walking a chain."""


@dataclass(frozen=True, slots=True)
class RoomState:
    """Where a room's chain stands."""

    room_id: str
    next_seq: int
    head_hash: str
    """``entry_hash`` of ``next_seq - 1`` (the anchor hash if nothing is kept after it)."""
    anchor_seq: int
    """First seq still stored (entries before it were purged)."""
    anchor_hash: str
    """``prev_hash`` of ``anchor_seq``: the genesis hash, or the last purged entry's hash."""


@dataclass(frozen=True, slots=True)
class _Pending:
    entry: AuditEntry
    data: dict[str, Any]
    occurred_at: float
    blob_sha256: str | None


class Tx:
    """A cursor in an open transaction, with the dialect's placeholder style."""

    def __init__(self, cursor: Any, placeholder: str) -> None:
        self._cursor = cursor
        self._placeholder = placeholder

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Tx:
        if self._placeholder != "?":
            sql = sql.replace("?", self._placeholder)
        self._cursor.execute(sql, tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Tx:
        if self._placeholder != "?":
            sql = sql.replace("?", self._placeholder)
        self._cursor.executemany(sql, [tuple(row) for row in rows])
        return self

    def one(self) -> Row | None:
        row: Row | None = self._cursor.fetchone()
        return row

    def all(self) -> list[Row]:
        return list(self._cursor.fetchall())


class AuditStore:
    """Abstract base; open one with :func:`alerts.audit.open_store`."""

    for_update = ""
    """Row-lock clause of the room read in a write transaction (PostgreSQL: FOR UPDATE)."""

    def __init__(self, *, key: SigningKey, keep_evidence: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.key = key
        """The Ed25519 key that signs checkpoints, purge records and export manifests."""
        self.keep_evidence = keep_evidence
        """Store evidence audio. Off: the blob's sha256 is still chained, the bytes dropped."""
        self._clock = clock
        self._lock = threading.RLock()
        self._last_checkpoint_scan = -math.inf

    # -- dialect hooks ------------------------------------------------------------------
    def _write(self) -> AbstractContextManager[Tx]:
        """A write transaction, committed on exit (rolled back on an exception)."""
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Tx]:
        """A read-only snapshot (one transaction)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _init(self) -> None:
        """Call from the subclass once the schema exists: records the public key."""
        with self._lock, self._write() as tx:
            tx.execute("INSERT INTO audit_keys (key_id, public_key, first_used) VALUES (?, ?, ?)"
                       " ON CONFLICT (key_id) DO NOTHING",
                       (self.key.key_id, self.key.public_key_hex, self._clock()))

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------
    def append(self, entries: Sequence[AuditEntry]) -> list[StoredEntry]:
        """Append in one transaction; duplicates (same kind + event_id) skipped, not returned."""
        pending = [_validate(entry, index) for index, entry in enumerate(entries)]
        if not pending:
            return []
        with self._lock, self._write() as tx:
            return self._append_in(tx, pending, self._clock())

    def _append_in(self, tx: Tx, pending: Sequence[_Pending], recorded_at: float
                   ) -> list[StoredEntry]:
        fresh: dict[tuple[str, str], _Pending] = {}
        for item in pending:  # first occurrence in the batch wins
            fresh.setdefault((item.entry.kind, item.entry.event_id), item)
        for stored_key in self._existing(tx, list(fresh)):
            del fresh[stored_key]
        rooms: dict[str, RoomState] = {}
        stored: list[StoredEntry] = []
        blobs: dict[str, bytes] = {}
        for item in fresh.values():
            entry = item.entry
            room = rooms.get(entry.room_id) or self._room_for_write(tx, entry.room_id)
            leaf = StoredEntry(
                room_id=entry.room_id, seq=room.next_seq, kind=entry.kind,
                event_id=entry.event_id, occurred_at=item.occurred_at, recorded_at=recorded_at,
                data=item.data, blob_sha256=item.blob_sha256, prev_hash=room.head_hash,
                entry_hash="")
            entry_hash = chain_hash(room.head_hash, leaf.leaf_hash())
            stored.append(StoredEntry(leaf.room_id, leaf.seq, leaf.kind, leaf.event_id,
                                      leaf.occurred_at, leaf.recorded_at, leaf.data,
                                      leaf.blob_sha256, leaf.prev_hash, entry_hash))
            if entry.blob is not None and self.keep_evidence and item.blob_sha256:
                blobs[item.blob_sha256] = bytes(entry.blob)
            rooms[entry.room_id] = RoomState(room.room_id, room.next_seq + 1, entry_hash,
                                             room.anchor_seq, room.anchor_hash)
        if stored:
            tx.executemany(f"INSERT INTO audit_entries ({ENTRY_COLUMNS}) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [_entry_params(new) for new in stored])
        if blobs:
            tx.executemany("INSERT INTO audit_blobs (sha256, data) VALUES (?, ?) "
                           "ON CONFLICT (sha256) DO NOTHING", list(blobs.items()))
        for room in rooms.values():
            tx.execute("UPDATE audit_rooms SET next_seq = ?, head_hash = ? WHERE room_id = ?",
                       (room.next_seq, room.head_hash, room.room_id))
        return stored

    @staticmethod
    def _existing(tx: Tx, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which ``(kind, event_id)`` are already stored (one query per 200)."""
        found: set[tuple[str, str]] = set()
        for start in range(0, len(keys), 200):
            chunk = keys[start:start + 200]
            where = " OR ".join(["(kind = ? AND event_id = ?)"] * len(chunk))
            rows = tx.execute(f"SELECT kind, event_id FROM audit_entries WHERE {where}",
                              [value for key in chunk for value in key]).all()
            found.update((row[0], row[1]) for row in rows)
        return found

    def _room_for_write(self, tx: Tx, room_id: str) -> RoomState:
        genesis = genesis_hash(room_id)
        tx.execute("INSERT INTO audit_rooms (room_id, next_seq, head_hash, anchor_seq, "
                   "anchor_hash) VALUES (?, 0, ?, 0, ?) ON CONFLICT (room_id) DO NOTHING",
                   (room_id, genesis, genesis))
        row = tx.execute("SELECT room_id, next_seq, head_hash, anchor_seq, anchor_hash "
                         f"FROM audit_rooms WHERE room_id = ?{self.for_update}",
                         (room_id,)).one()
        assert row is not None
        return RoomState(row[0], int(row[1]), row[2], int(row[3]), row[4])

    # -- reading ------------------------------------------------------------------------
    def entries(self, room_id: str, *, since: float | None = None, until: float | None = None,
                kinds: Collection[str] | None = None, limit: int | None = None
                ) -> list[StoredEntry]:
        """A room's entries with ``since <= occurred_at < until``, in seq order."""
        where = ["room_id = ?"]
        params: list[Any] = [room_id]
        if since is not None:
            where.append("occurred_at >= ?")
            params.append(float(since))
        if until is not None:
            where.append("occurred_at < ?")
            params.append(float(until))
        if kinds is not None:
            kinds = list(kinds)
            if not kinds:
                return []
            where.append(f"kind IN ({', '.join('?' * len(kinds))})")
            params.extend(kinds)
        sql = (f"SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE {' AND '.join(where)} "
               "ORDER BY seq")
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._lock, self._read() as tx:
            return [_entry_from_row(row) for row in tx.execute(sql, params).all()]

    def entries_by_seq(self, room_id: str, first: int, last: int) -> list[StoredEntry]:
        """A room's stored entries with ``first <= seq <= last``, in seq order."""
        with self._lock, self._read() as tx:
            rows = tx.execute(f"SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE room_id = ? "
                              "AND seq >= ? AND seq <= ? ORDER BY seq",
                              (room_id, first, last)).all()
        return [_entry_from_row(row) for row in rows]

    def iter_entries(self, room_id: str, first: int = 0, last: int | None = None
                     ) -> Iterator[StoredEntry]:
        """A room's entries from ``first`` (to ``last``), read :data:`PAGE` at a time."""
        seq = first
        while last is None or seq <= last:
            upper = seq + PAGE - 1 if last is None else min(last, seq + PAGE - 1)
            page = self.entries_by_seq(room_id, seq, upper)
            yield from page
            if not page or page[-1].seq < upper:
                return
            seq = upper + 1

    def seq_window(self, room_id: str, since: float | None, until: float | None
                   ) -> tuple[int, int] | None:
        """``(first, last)`` seq of the room's entries with ``since <= occurred_at < until``."""
        where, params = ["room_id = ?"], [room_id]
        if since is not None:
            where.append("occurred_at >= ?")
            params.append(float(since))  # type: ignore[arg-type]
        if until is not None:
            where.append("occurred_at < ?")
            params.append(float(until))  # type: ignore[arg-type]
        with self._lock, self._read() as tx:
            row = tx.execute(f"SELECT MIN(seq), MAX(seq) FROM audit_entries "
                             f"WHERE {' AND '.join(where)}", params).one()
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def find(self, kind: str, event_id: str) -> StoredEntry | None:
        with self._lock, self._read() as tx:
            row = tx.execute(f"SELECT {ENTRY_COLUMNS} FROM audit_entries WHERE kind = ? AND "
                             "event_id = ?", (kind, event_id)).one()
        return None if row is None else _entry_from_row(row)

    def blob(self, sha256: str) -> bytes | None:
        """Evidence audio (WAV) by its sha256, or None (never stored, or purged)."""
        with self._lock, self._read() as tx:
            row = tx.execute("SELECT data FROM audit_blobs WHERE sha256 = ?", (sha256,)).one()
        return None if row is None else bytes(row[0])

    def rooms(self) -> list[str]:
        with self._lock, self._read() as tx:
            return [row[0] for row in
                    tx.execute("SELECT room_id FROM audit_rooms ORDER BY room_id").all()]

    def room_state(self, room_id: str) -> RoomState | None:
        with self._lock, self._read() as tx:
            row = tx.execute("SELECT room_id, next_seq, head_hash, anchor_seq, anchor_hash "
                             "FROM audit_rooms WHERE room_id = ?", (room_id,)).one()
        return None if row is None else RoomState(row[0], int(row[1]), row[2], int(row[3]),
                                                  row[4])

    def public_keys(self) -> dict[str, str]:
        """``key_id -> public key hex`` of every key that has signed in this store."""
        with self._lock, self._read() as tx:
            return {row[0]: row[1] for row in
                    tx.execute("SELECT key_id, public_key FROM audit_keys").all()}

    # -- checkpoints --------------------------------------------------------------------
    def checkpoint(self, room_id: str) -> Checkpoint:
        """Sign and keep the room's current head (``seq = -1`` for a room with no entries)."""
        with self._lock, self._write() as tx:
            row = tx.execute("SELECT next_seq, head_hash FROM audit_rooms WHERE room_id = ?",
                             (room_id,)).one()
            seq, head = (-1, genesis_hash(room_id)) if row is None else (int(row[0]) - 1,
                                                                         row[1])
            checkpoint = self.key.checkpoint(room_id, seq, head, self._clock())
            tx.execute("INSERT INTO audit_checkpoints (room_id, seq, head_hash, signed_at, "
                       "key_id, signature) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       (checkpoint.room_id, checkpoint.seq, checkpoint.head_hash,
                        checkpoint.signed_at, checkpoint.key_id, checkpoint.signature))
        return checkpoint

    def maybe_checkpoint(self, every_s: float) -> list[Checkpoint]:
        """At most once per ``every_s``: checkpoint each room with entries past its latest
        checkpoint. Cheap to call on every poll (returns at once between scans)."""
        now = self._clock()
        if now - self._last_checkpoint_scan < every_s:
            return []
        self._last_checkpoint_scan = now
        with self._lock, self._read() as tx:
            rows = tx.execute(
                "SELECT r.room_id FROM audit_rooms r LEFT JOIN (SELECT room_id, MAX(seq) AS seq "
                "FROM audit_checkpoints GROUP BY room_id) c ON c.room_id = r.room_id "
                "WHERE r.next_seq - 1 > COALESCE(c.seq, -1) ORDER BY r.room_id").all()
        return [self.checkpoint(row[0]) for row in rows]

    def checkpoints(self, room_id: str, *, min_seq: int | None = None) -> list[Checkpoint]:
        """The room's stored checkpoints (``seq >= min_seq``), oldest first."""
        with self._lock, self._read() as tx:
            rows = tx.execute("SELECT room_id, seq, head_hash, signed_at, key_id, signature "
                              "FROM audit_checkpoints WHERE room_id = ? AND seq >= ? "
                              "ORDER BY seq, signed_at",
                              (room_id, -1 if min_seq is None else min_seq)).all()
        return [Checkpoint(r[0], int(r[1]), r[2], float(r[3]), r[4], r[5]) for r in rows]

    # -- checking -----------------------------------------------------------------------
    def verify_room(self, room_id: str) -> ChainReport:
        """Walk the stored chain from its anchor: seq contiguity, every hash, stored evidence
        blobs, the room's head, every checkpoint, and the signed purge record that explains
        the anchor (:func:`alerts.audit.chain_check.verify_room`)."""
        return verify_room(self, room_id)


def _validate(entry: AuditEntry, index: int) -> _Pending:
    where = f"entry {index}"
    if not isinstance(entry, AuditEntry):
        raise AuditInputError(f"{where}: not an AuditEntry ({type(entry).__name__})")
    where = f"entry {index} ({entry.kind} {entry.event_id!r})"
    if not isinstance(entry.room_id, str) or not entry.room_id:
        raise AuditInputError(f"{where}: room_id must be a non-empty string")
    if entry.kind not in WRITER_KINDS:
        reason = ("purge records are written by the retention job" if entry.kind == "purge"
                  else f"kind must be one of {sorted(WRITER_KINDS)}")
        raise AuditInputError(f"{where}: {reason}")
    if not isinstance(entry.event_id, str) or not entry.event_id:
        raise AuditInputError(f"{where}: event_id must be a non-empty string")
    occurred = entry.occurred_at
    if (isinstance(occurred, bool) or not isinstance(occurred, int | float)
            or not math.isfinite(occurred)):
        raise AuditInputError(f"{where}: occurred_at must be finite Unix seconds, "
                              f"got {occurred!r}")
    try:
        data, _ = normalize_data(entry.data)
    except AuditInputError as exc:
        raise AuditInputError(f"{where}: {exc}") from exc
    blob_sha = None
    if entry.blob is not None:
        if entry.kind != "evidence":
            raise AuditInputError(f"{where}: only evidence entries carry a blob")
        if not isinstance(entry.blob, bytes | bytearray | memoryview):
            raise AuditInputError(f"{where}: blob must be bytes")
        blob_sha = sha256_hex(bytes(entry.blob))
    return _Pending(entry, data, float(occurred), blob_sha)


def _entry_params(entry: StoredEntry) -> tuple[Any, ...]:
    return (entry.room_id, entry.seq, entry.kind, entry.event_id, entry.occurred_at,
            entry.recorded_at, canonical_json(entry.data).decode("utf-8"), entry.blob_sha256,
            entry.prev_hash, entry.entry_hash)


def _entry_from_row(row: Row) -> StoredEntry:
    return StoredEntry(room_id=row[0], seq=int(row[1]), kind=row[2], event_id=row[3],
                       occurred_at=float(row[4]), recorded_at=float(row[5]),
                       data=json.loads(row[6]), blob_sha256=row[7], prev_hash=row[8],
                       entry_hash=row[9])
