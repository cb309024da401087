"""The audit store's tables, shared by SQLite and PostgreSQL.

Statements are written once with ``?`` placeholders and portable types; the PostgreSQL store
swaps the placeholders for ``%s`` and :data:`BLOB_TYPE` for ``BYTEA``. ``data`` is kept as the
canonical JSON *text* that was hashed (never ``JSONB``, which would re-order keys and re-print
numbers), so a stored entry re-hashes to the same value in any database.

- ``audit_rooms``: one row per room: next seq, head hash, and the anchor (the first seq still
  kept and the hash before it: the genesis hash, or after a purge the last purged entry's hash).
- ``audit_entries``: the chain; ``(room_id, seq)`` primary key, ``(kind, event_id)`` unique (the
  idempotence key of :meth:`AuditStore.append`).
- ``audit_blobs``: evidence audio by sha256 (content-addressed: the same clip is kept once).
- ``audit_checkpoints``: signed chain heads; ``audit_keys``: every public key that signed here.
"""

from __future__ import annotations

__all__ = ["BLOB_TYPE", "DDL", "ENTRY_COLUMNS"]

BLOB_TYPE = "BLOB"

DDL = (
    """CREATE TABLE IF NOT EXISTS audit_rooms (
        room_id TEXT PRIMARY KEY,
        next_seq BIGINT NOT NULL,
        head_hash TEXT NOT NULL,
        anchor_seq BIGINT NOT NULL,
        anchor_hash TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit_entries (
        room_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        event_id TEXT NOT NULL,
        occurred_at DOUBLE PRECISION NOT NULL,
        recorded_at DOUBLE PRECISION NOT NULL,
        data TEXT NOT NULL,
        blob_sha256 TEXT,
        prev_hash TEXT NOT NULL,
        entry_hash TEXT NOT NULL,
        PRIMARY KEY (room_id, seq),
        UNIQUE (kind, event_id))""",
    "CREATE INDEX IF NOT EXISTS audit_entries_time ON audit_entries (room_id, occurred_at)",
    "CREATE INDEX IF NOT EXISTS audit_entries_blob ON audit_entries (blob_sha256)",
    """CREATE TABLE IF NOT EXISTS audit_blobs (
        sha256 TEXT PRIMARY KEY,
        data {blob} NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit_checkpoints (
        room_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        head_hash TEXT NOT NULL,
        signed_at DOUBLE PRECISION NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL,
        PRIMARY KEY (room_id, seq, signed_at))""",
    """CREATE TABLE IF NOT EXISTS audit_keys (
        key_id TEXT PRIMARY KEY,
        public_key TEXT NOT NULL,
        first_used DOUBLE PRECISION NOT NULL)""",
)

ENTRY_COLUMNS = ("room_id, seq, kind, event_id, occurred_at, recorded_at, data, blob_sha256, "
                 "prev_hash, entry_hash")
