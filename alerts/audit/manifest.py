"""The export manifest: its fields, its signature, and the per-field digests that let
``verify`` name the field that was edited.

The signature (Ed25519, tag ``roomwarden.audit.manifest.v1``) covers the canonical JSON of the
whole manifest except ``signature``. When it fails, the verifier still wants to say *which*
field changed; so the signed manifest also carries ``field_sha256``: for every leaf of the
manifest (a JSON Pointer, RFC 6901, e.g. ``/records/count`` or ``/files/clips~1<sha>.wav``) the
first 16 hex digits of SHA-256 of its canonical JSON. A field edited, added or removed no longer
matches its digest and is named; the digests are only a diagnostic (whoever edits a field can
edit its digest too, and then the signature alone catches it -- and ``verify`` says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from alerts.audit.checkpoints import MANIFEST_TAG, SigningKey, verify_signature
from alerts.audit.entries import AuditInputError, StoredEntry, canonical_json, sha256_hex

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "MANIFEST_FIELDS",
    "MANIFEST_NAME",
    "RECORDS_NAME",
    "edited_field",
    "flatten",
    "policy_packs",
    "sign_manifest",
    "signature_ok",
]

BUNDLE_FORMAT = "roomwarden.audit.bundle"
BUNDLE_VERSION = 1
MANIFEST_NAME = "manifest.json"
RECORDS_NAME = "records.jsonl"
MANIFEST_FIELDS = (
    "format", "version", "room_id", "window", "created_at", "records", "view", "files",
    "evidence", "policy_packs", "checkpoint", "checkpoint_public_key", "checkpoint_link",
    "key_id", "public_key", "field_sha256", "signature")
"""Top-level keys of a manifest, all required."""
_UNDIGESTED = ("field_sha256", "signature")
DIGEST_HEX = 16


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def flatten(value: Any, pointer: str = "") -> dict[str, Any]:
    """Leaves of a JSON value by JSON Pointer (scalars and empty containers are leaves)."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{pointer}/{_escape(str(key))}"))
        return out
    if isinstance(value, list) and value:
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{pointer}/{index}"))
        return out
    return {pointer: value}


def _digests(manifest: Mapping[str, Any]) -> dict[str, str]:
    body = {k: v for k, v in manifest.items() if k not in _UNDIGESTED}
    return {pointer: _digest(leaf) for pointer, leaf in flatten(body).items()}


def _digest(leaf: Any) -> str:
    try:
        return sha256_hex(canonical_json(leaf))[:DIGEST_HEX]
    except AuditInputError:  # e.g. a lone surrogate: matches no signed digest
        return "not canonical JSON"


def _unsigned(manifest: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest.items() if k != "signature"}


def sign_manifest(manifest: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """Add ``field_sha256`` and ``signature`` (in place, and returned)."""
    manifest.pop("signature", None)
    manifest["field_sha256"] = _digests(manifest)
    manifest["signature"] = key.sign(MANIFEST_TAG, _unsigned(manifest))
    return manifest


def signature_ok(manifest: Mapping[str, Any]) -> bool:
    public, signature = manifest.get("public_key"), manifest.get("signature")
    if not isinstance(public, str) or not isinstance(signature, str):
        return False
    try:
        return verify_signature(public, MANIFEST_TAG, _unsigned(manifest), signature)
    except AuditInputError:  # not canonical JSON, so not what was signed
        return False


def edited_field(manifest: Mapping[str, Any]) -> tuple[str, str]:
    """For a manifest whose signature failed: ``(json pointer, "edited"|"added"|"removed")``
    of the first field that no longer matches its signed digest."""
    for name in MANIFEST_FIELDS:
        if name not in manifest:
            return f"/{name}", "removed"
    for name in manifest:
        if name not in MANIFEST_FIELDS:
            return f"/{_escape(name)}", "added"
    signed = manifest.get("field_sha256")
    if not isinstance(signed, Mapping) or not all(isinstance(v, str) for v in signed.values()):
        return "/field_sha256", "edited"
    actual = _digests(manifest)
    for pointer in sorted(set(signed) | set(actual)):
        if pointer not in actual:
            # A leaf that became a container (or the reverse) was edited, not removed.
            inside = any(other.startswith(pointer + "/") for other in actual)
            return pointer, "edited" if inside else "removed"
        if pointer not in signed:
            inside = any(other.startswith(pointer + "/") for other in signed)
            return pointer, "edited" if inside else "added"
        if signed[pointer] != actual[pointer]:
            return pointer, "edited"
    # Every field matches its digest: the digests or the signature themselves were changed.
    return "/signature", "edited"


def policy_packs(entries: Iterable[StoredEntry]) -> list[dict[str, str]]:
    """The distinct rule packs in force (``policy`` objects of the entries' data), sorted."""
    seen: dict[tuple[str, str, str], dict[str, str]] = {}
    for entry in entries:
        policy = entry.data.get("policy")
        if not isinstance(policy, Mapping):
            continue
        name, version, sha = policy.get("name"), policy.get("version"), policy.get("sha256")
        if isinstance(name, str) and isinstance(version, str) and isinstance(sha, str):
            seen[(name, version, sha)] = {"name": name, "version": version, "sha256": sha}
    return [seen[k] for k in sorted(seen)]
