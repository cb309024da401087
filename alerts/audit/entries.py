"""Audit log records: the types, their canonical JSON, and the hash chain over them.

One room's log is a chain of entries with contiguous ``seq`` (0, 1, 2, ...). Each entry is
hashed in two steps, with a one-byte domain prefix per step (the RFC 6962 habit, so a leaf can
never be passed off as a link and vice versa)::

    leaf_hash  = SHA-256(0x00 || canonical JSON of the entry's content)
    entry_hash = SHA-256(0x01 || prev_hash (32 bytes) || leaf_hash (32 bytes))
    genesis    = SHA-256(0x02 || "roomwarden.audit.genesis.v1" || 0x00 || room_id UTF-8)

The content is :data:`LEAF_FIELDS` (room, seq, kind, event id, both times, data, blob sha256)
plus ``"v": 1``; ``prev_hash`` of seq 0 is the room's genesis hash. Splitting leaf and link lets
an export prove that its last record is covered by a later signed checkpoint by listing only
the leaf hashes in between (never their content).

Canonical JSON: ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
allow_nan=False)`` encoded as UTF-8. Python floats print as their shortest round-trip repr, so
parse-and-dump is stable; NaN/Infinity, lone surrogates and non-string keys are refused
(:class:`AuditInputError`), so what is hashed is exactly what any reader gets back.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = [
    "KINDS",
    "LEAF_FIELDS",
    "RECORD_FIELDS",
    "WRITER_KINDS",
    "AuditEntry",
    "AuditError",
    "AuditInputError",
    "AuditKind",
    "StoredEntry",
    "canonical_json",
    "chain_hash",
    "entry_from_record",
    "genesis_hash",
    "leaf_hash",
    "normalize_data",
    "record_line",
    "sha256_hex",
    "strict_loads",
]

AuditKind = Literal["transcript", "alert", "review", "gap", "escalation", "evidence", "purge"]
KINDS: tuple[str, ...] = get_args(AuditKind)
WRITER_KINDS = frozenset(KINDS) - {"purge"}
"""Kinds a writer may append; ``purge`` records are written by the retention job only."""

ENTRY_VERSION = 1
LEAF_FIELDS = ("blob_sha256", "data", "event_id", "kind", "occurred_at", "recorded_at",
               "room_id", "seq", "v")
"""Keys of the hashed content of an entry (sorted, as canonical JSON orders them)."""
RECORD_FIELDS = (*LEAF_FIELDS, "entry_hash", "prev_hash")
"""Keys of an exported record line: the content plus its place in the chain."""

_LEAF = b"\x00"
_LINK = b"\x01"
_GENESIS = b"\x02roomwarden.audit.genesis.v1\x00"


class AuditError(Exception):
    """Base class of audit store errors."""


class AuditInputError(AuditError, ValueError):
    """An entry that cannot be recorded as given; the message names the entry and the field."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What a writer appends. ``(kind, event_id)`` already in the log: the append is a no-op."""

    room_id: str
    kind: AuditKind
    event_id: str
    """The CloudEvent id (alert_id, transcript_id, gap_id, segment id of evidence, ...)."""
    occurred_at: float
    """Unix seconds of the event (speech end, review time, ...)."""
    data: Mapping[str, Any]
    """The event's JSON data (as on Kafka); hashed as canonical JSON."""
    blob: bytes | None = None
    """``evidence`` only: the WAV bytes of the flagged speech (16 kHz mono s16)."""


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """What readers get back: an entry with its place in the room's chain."""

    room_id: str
    seq: int
    """Per-room sequence number, 0-based, contiguous."""
    kind: AuditKind
    event_id: str
    occurred_at: float
    recorded_at: float
    """When the store wrote it (Unix seconds)."""
    data: dict[str, Any]
    blob_sha256: str | None
    prev_hash: str
    """Hex; ``entry_hash`` of seq - 1, or the room's genesis hash for seq 0."""
    entry_hash: str
    """Hex; ``SHA-256(0x01 || prev_hash || leaf_hash)``."""

    def leaf(self) -> dict[str, Any]:
        """The hashed content (:data:`LEAF_FIELDS`)."""
        return {"blob_sha256": self.blob_sha256, "data": self.data, "event_id": self.event_id,
                "kind": self.kind, "occurred_at": self.occurred_at,
                "recorded_at": self.recorded_at, "room_id": self.room_id, "seq": self.seq,
                "v": ENTRY_VERSION}

    def leaf_hash(self) -> str:
        return leaf_hash(self.leaf())

    def record(self) -> dict[str, Any]:
        """The exported record: content plus ``prev_hash`` and ``entry_hash``."""
        return {**self.leaf(), "prev_hash": self.prev_hash, "entry_hash": self.entry_hash}


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8; refuses what would not read back identically."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except ValueError as exc:  # NaN / Infinity
        raise AuditInputError(f"not canonical JSON: {exc}") from exc
    except TypeError as exc:
        raise AuditInputError(f"not JSON data: {exc}") from exc
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AuditInputError(f"not valid Unicode text (lone surrogate at {exc.start})") from exc


def _check_keys(value: Any, path: str) -> None:
    # json.dumps turns int/float/bool/None keys into strings silently: what came back would
    # not be what was given, so say it instead.
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditInputError(f"data key {key!r} at {path or '/'} is not a string")
            _check_keys(item, f"{path}/{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_keys(item, f"{path}/{index}")


def normalize_data(data: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    """``(data as any reader will get it back, its canonical JSON)``."""
    if not isinstance(data, Mapping):
        raise AuditInputError(f"data must be a JSON object, got {type(data).__name__}")
    _check_keys(data, "")
    encoded = canonical_json(data)
    normalized: dict[str, Any] = json.loads(encoded)
    return normalized, encoded


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a float")
    return value


def strict_loads(raw: bytes) -> Any:
    """Parse untrusted JSON: UTF-8 only, no NaN/Infinity, no float overflow, bounded nesting;
    anything else raises :class:`ValueError`."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant,
                          parse_float=_finite_float)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leaf_hash(leaf: Mapping[str, Any]) -> str:
    return hashlib.sha256(_LEAF + canonical_json(leaf)).hexdigest()


def chain_hash(prev_hash: str, leaf_hash_hex: str) -> str:
    return hashlib.sha256(_LINK + bytes.fromhex(prev_hash) + bytes.fromhex(leaf_hash_hex)
                          ).hexdigest()


def genesis_hash(room_id: str) -> str:
    return hashlib.sha256(_GENESIS + room_id.encode("utf-8")).hexdigest()


def record_line(entry: StoredEntry) -> bytes:
    """One line of ``records.jsonl``: the canonical JSON of :meth:`StoredEntry.record`."""
    return canonical_json(entry.record()) + b"\n"


def _finite(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AuditInputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def entry_from_record(record: Mapping[str, Any]) -> StoredEntry:
    """A :class:`StoredEntry` from an exported record; :class:`AuditInputError` names the
    first missing, unexpected or mistyped field (no hash is checked here)."""
    missing = [k for k in RECORD_FIELDS if k not in record]
    if missing:
        raise AuditInputError(f"field {missing[0]!r} missing")
    extra = sorted(set(record) - set(RECORD_FIELDS))
    if extra:
        raise AuditInputError(f"unexpected field {extra[0]!r}")
    if record["v"] != ENTRY_VERSION or isinstance(record["v"], bool):
        raise AuditInputError(f"unknown record version {record['v']!r}")
    for name in ("room_id", "event_id", "prev_hash", "entry_hash"):
        if not isinstance(record[name], str):
            raise AuditInputError(f"{name} must be a string")
    if record["kind"] not in KINDS:
        raise AuditInputError(f"unknown kind {record['kind']!r}")
    seq = record["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise AuditInputError(f"seq must be a non-negative integer, got {seq!r}")
    if not isinstance(record["data"], dict):
        raise AuditInputError("data must be a JSON object")
    blob = record["blob_sha256"]
    if blob is not None and not isinstance(blob, str):
        raise AuditInputError("blob_sha256 must be a string or null")
    for name in ("prev_hash", "entry_hash"):
        if not _is_hex32(record[name]):
            raise AuditInputError(f"{name} is not 64 lowercase hex digits")
    # Exported times are floats (the store writes float(...)); an int here was edited.
    for name in ("occurred_at", "recorded_at"):
        if not isinstance(record[name], float):
            raise AuditInputError(f"{name} must be a float, got {record[name]!r}")
    return StoredEntry(
        room_id=record["room_id"], seq=seq, kind=record["kind"], event_id=record["event_id"],
        occurred_at=_finite(record["occurred_at"], "occurred_at"),
        recorded_at=_finite(record["recorded_at"], "recorded_at"), data=record["data"],
        blob_sha256=blob, prev_hash=record["prev_hash"], entry_hash=record["entry_hash"])


def _is_hex32(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)
