"""Ed25519 signing: the store's key, signed checkpoints (chain heads), signed statements.

The key is an Ed25519 private key in a PKCS#8 PEM file, created with mode 0600 on first use
(``O_CREAT | O_EXCL``, so two processes starting together cannot both write one). Its id is the
first 16 hex digits of SHA-256 of the raw 32-byte public key.

Everything signed is ``domain tag || 0x0a || canonical JSON``, with one tag per kind of
statement (``roomwarden.audit.checkpoint.v1``, ``...manifest.v1``, ``...purge.v1``), so a
signature over one kind can never be replayed as another.

A checkpoint says: "room R's chain had ``seq + 1`` entries and its head was ``head_hash`` at
``signed_at``" (``seq = -1`` and the genesis hash for a room with no entries yet). An auditor who
keeps the checkpoints they were given can later check that an export is consistent with them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from alerts.audit.entries import AuditError, canonical_json

__all__ = [
    "CHECKPOINT_TAG",
    "MANIFEST_TAG",
    "PURGE_TAG",
    "Checkpoint",
    "KeyFileError",
    "SigningKey",
    "key_id_of",
    "purge_signature_ok",
    "verify_checkpoint",
    "verify_signature",
]

CHECKPOINT_TAG = "roomwarden.audit.checkpoint.v1"
MANIFEST_TAG = "roomwarden.audit.manifest.v1"
PURGE_TAG = "roomwarden.audit.purge.v1"


class KeyFileError(AuditError):
    """The signing key file cannot be read, is not an Ed25519 key, or is readable by others."""


def _message(tag: str, payload: Mapping[str, Any]) -> bytes:
    return tag.encode("ascii") + b"\n" + canonical_json(payload)


def key_id_of(public_key_hex: str) -> str:
    """First 16 hex digits of SHA-256 of the raw public key."""
    return hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest()[:16]


class SigningKey:
    """The store's Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                    serialization.PublicFormat.Raw)
        self.public_key_hex = raw.hex()
        """Raw 32-byte public key, hex."""
        self.key_id = key_id_of(self.public_key_hex)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """Read the key at ``path``; create it (0600, parent directories 0700) when missing."""
        path = Path(path).expanduser()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first: use theirs
            else:
                with os.fdopen(fd, "wb") as out:
                    out.write(pem)
                    out.flush()
                    os.fsync(out.fileno())
                return cls(key)
        if os.name == "posix" and path.stat().st_mode & 0o077:
            raise KeyFileError(f"{path}: signing key is readable by group/others "
                               f"(mode {path.stat().st_mode & 0o777:o}); chmod 600 it")
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as exc:
            raise KeyFileError(f"{path}: not a readable unencrypted PEM private key: {exc}"
                               ) from exc
        if not isinstance(loaded, Ed25519PrivateKey):
            raise KeyFileError(f"{path}: not an Ed25519 key ({type(loaded).__name__})")
        return cls(loaded)

    def sign(self, tag: str, payload: Mapping[str, Any]) -> str:
        """Hex Ed25519 signature over ``tag || "\\n" || canonical_json(payload)``."""
        return self._key.sign(_message(tag, payload)).hex()

    def checkpoint(self, room_id: str, seq: int, head_hash: str, signed_at: float
                   ) -> Checkpoint:
        unsigned = Checkpoint(room_id=room_id, seq=seq, head_hash=head_hash,
                              signed_at=float(signed_at), key_id=self.key_id, signature="")
        return unsigned.with_signature(self.sign(CHECKPOINT_TAG, unsigned.payload()))


def verify_signature(public_key_hex: str, tag: str, payload: Mapping[str, Any],
                     signature_hex: str) -> bool:
    """True when ``signature_hex`` is the key's signature of ``payload`` under ``tag``."""
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        public.verify(bytes.fromhex(signature_hex), _message(tag, payload))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed chain head: room ``room_id`` had entries ``0..seq`` and head ``head_hash``."""

    room_id: str
    seq: int
    """Last seq covered (``-1``: the room had no entries)."""
    head_hash: str
    """``entry_hash`` of ``seq`` (the genesis hash when ``seq == -1``)."""
    signed_at: float
    """Unix seconds when it was signed."""
    key_id: str
    signature: str
    """Hex Ed25519 signature over :meth:`payload` under :data:`CHECKPOINT_TAG`."""

    def payload(self) -> dict[str, Any]:
        """What is signed: every field but the signature."""
        return {"room_id": self.room_id, "seq": self.seq, "head_hash": self.head_hash,
                "signed_at": self.signed_at, "key_id": self.key_id}

    def with_signature(self, signature: str) -> Checkpoint:
        return Checkpoint(self.room_id, self.seq, self.head_hash, self.signed_at, self.key_id,
                          signature)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Checkpoint:
        """Strict: exactly the six fields, with their types (:class:`ValueError` otherwise)."""
        expected = {"room_id": str, "seq": int, "head_hash": str, "signed_at": float,
                    "key_id": str, "signature": str}
        if set(raw) != set(expected):
            raise ValueError(f"checkpoint fields {sorted(raw)} != {sorted(expected)}")
        for name, kind in expected.items():
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"checkpoint {name} is not a {kind.__name__}: {value!r}")
        return cls(**raw)


def verify_checkpoint(checkpoint: Checkpoint, public_key_hex: str) -> bool:
    """True when the checkpoint is signed by this key (and names its key id)."""
    try:
        if checkpoint.key_id != key_id_of(public_key_hex):
            return False
    except ValueError:  # not hex
        return False
    return verify_signature(public_key_hex, CHECKPOINT_TAG, checkpoint.payload(),
                            checkpoint.signature)


def purge_signature_ok(data: Mapping[str, Any], public_keys: Mapping[str, str]) -> bool:
    """True when a ``purge`` entry's data carries a valid signature (over every other field,
    under :data:`PURGE_TAG`) by one of ``public_keys`` (``key_id -> public key hex``)."""
    signature, key_id = data.get("signature"), data.get("key_id")
    public = public_keys.get(key_id) if isinstance(key_id, str) else None
    if not isinstance(signature, str) or public is None:
        return False
    payload = {k: v for k, v in data.items() if k != "signature"}
    return verify_signature(public, PURGE_TAG, payload, signature)
