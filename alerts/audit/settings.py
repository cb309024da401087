"""Audit store settings (``ROOMWARDEN_AUDIT__*`` once the lead adds ``audit: AuditSettings``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

__all__ = ["DATA_DIR", "AuditSettings", "default_key_path", "default_url"]

DATA_DIR = Path("~/.local/share/roomwarden")
"""Where the embedded audit database and its signing key live by default."""


def default_url() -> str:
    return f"sqlite:///{(DATA_DIR / 'audit.db').expanduser()}"


def default_key_path() -> Path:
    return (DATA_DIR / "audit-ed25519.pem").expanduser()


class AuditSettings(BaseModel):
    """The audit log: every transcript, verdict, review, gap and evidence clip, hash-chained
    per room, with signed checkpoints (``ROOMWARDEN_AUDIT__*``)."""

    url: str = Field(default_factory=default_url)
    """Where the log lives. ``sqlite:///abs/path.db`` (embedded, WAL, fsync on every commit;
    default ``~/.local/share/roomwarden/audit.db``) or ``postgresql://user@host/db``
    (production; needs ``psycopg[binary]``)."""
    key_path: Path | None = None
    """Ed25519 private key (PKCS#8 PEM) that signs checkpoints, purge records and export
    manifests; created with mode 0600 on first use. Unset: beside a SQLite store
    (``<db>.key.pem``), else ``~/.local/share/roomwarden/audit-ed25519.pem``. Its key id (first
    16 hex of sha256 of the raw public key) is printed by ``roomwarden audit checkpoint`` and
    written in every export: give it to auditors so they can pin it (``roomwarden verify
    --key-id``). Back it up: a lost key means new checkpoints under a new id."""
    retention_days: float = Field(default=180, gt=0)
    """Entries recorded longer ago than this are purged (``roomwarden audit purge``), leaving a
    signed ``purge`` record of what went. 180 days: China's Cybersecurity Law art. 21 asks for
    network logs to be kept at least six months."""
    keep_evidence: bool = True
    """Keep the audio of flagged segments (``evidence`` entries' WAV). Off: the clip's sha256 is
    still chained (the log still says which audio it was), the bytes are not stored."""
    checkpoint_every_s: float = Field(default=60, gt=0)
    """Period of the recorder's signed checkpoints (``AuditStore.maybe_checkpoint``): each room
    with new entries gets a signed chain head at most this often."""
