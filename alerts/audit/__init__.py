"""The audit log: per-room append-only hash chains with signed checkpoints, export and verify.

Every transcript, alert, review, gap, escalation and evidence clip is appended to its room's
chain (:mod:`alerts.audit.entries` defines the hashing); :class:`AuditStore` keeps it in SQLite
(embedded default) or PostgreSQL; checkpoints and purge records are signed with Ed25519
(:mod:`alerts.audit.checkpoints`); :mod:`alerts.audit.retention` purges old entries;
:mod:`alerts.audit.export` writes an auditor's bundle and :mod:`alerts.audit.verify` checks one.

    store = open_store("sqlite:////var/lib/roomwarden/audit.db")
    store.append([AuditEntry("room-1", "alert", alert_id, occurred_at, data)])
    bundle = build_bundle(store, "room-1", since=t0, until=t1, fmt="csv")
    bundle.write(Path("export.tar.gz"))      # or bundle.tar_bytes() for an HTTP download
    verify_bundle(Path("export.tar.gz")).ok  # or verify_files(bundle.files)
"""

from __future__ import annotations

from pathlib import Path

from alerts.audit.checkpoints import Checkpoint, SigningKey, verify_checkpoint
from alerts.audit.entries import (
    KINDS,
    AuditEntry,
    AuditError,
    AuditInputError,
    AuditKind,
    StoredEntry,
)
from alerts.audit.export import Bundle, build_bundle, export_room
from alerts.audit.settings import AuditSettings, default_key_path
from alerts.audit.store import AuditStore, ChainReport, RoomState
from alerts.audit.verify import Problem, Verification, verify_bundle, verify_files

__all__ = [
    "KINDS",
    "AuditEntry",
    "AuditError",
    "AuditInputError",
    "AuditKind",
    "AuditSettings",
    "AuditStore",
    "Bundle",
    "ChainReport",
    "Checkpoint",
    "Problem",
    "RoomState",
    "SigningKey",
    "StoredEntry",
    "Verification",
    "build_bundle",
    "export_room",
    "open_store",
    "verify_bundle",
    "verify_checkpoint",
    "verify_files",
]


def open_store(url: str, *, key_path: Path | None = None, keep_evidence: bool = True,
               key: SigningKey | None = None) -> AuditStore:
    """Open (creating tables as needed) the audit store at ``url``.

    ``sqlite:///abs/path.db`` (WAL, ``synchronous=FULL``) or ``postgresql://...`` (psycopg).
    ``key_path``: the Ed25519 signing key, created 0600 when missing; default: beside a SQLite
    file (``<db>.key.pem``), else ``~/.local/share/roomwarden/audit-ed25519.pem``. An in-memory
    SQLite store (``sqlite://``) without a key path gets a throw-away key. ``key`` (a loaded
    :class:`SigningKey`) overrides ``key_path``.
    """
    if url.startswith("sqlite:"):
        from alerts.audit.sqlite_store import MEMORY, SqliteAuditStore, sqlite_path
        path = sqlite_path(url)
        if key is None:
            if key_path is None and path == MEMORY:
                key = SigningKey.generate()
            else:
                key = SigningKey.load_or_create(key_path or Path(path + ".key.pem"))
        return SqliteAuditStore(path, key=key, keep_evidence=keep_evidence)
    if url.startswith(("postgresql://", "postgres://")):
        from alerts.audit.postgres_store import PostgresAuditStore
        key = key or SigningKey.load_or_create(key_path or default_key_path())
        return PostgresAuditStore(url, key=key, keep_evidence=keep_evidence)
    raise ValueError(f"audit store URL must start with sqlite:/// or postgresql://, "
                     f"got {url.split('://')[0]!r}")
