"""Verify an export bundle, and name the first thing wrong with it.

Order of checks (the first failure is the answer):

1. ``manifest.json``: readable, in its own canonical layout, every field present, its Ed25519
   signature valid under its ``public_key`` (a failure names the field via the signed
   per-field digests: ``/records/count edited``), ``key_id`` derived from ``public_key``, and,
   when the caller pins one (``--key-id``), the expected key.
2. ``records.jsonl`` against the signed chain ends (``anchor_hash`` .. ``head_hash``): names the
   FIRST bad record by seq and says ``altered`` / ``removed`` / ``inserted`` / ``reordered``.
3. Evidence clips (each evidence record's ``clips/<sha256>.wav`` hashes to its sha256, or the
   signed manifest lists it as absent), the view (re-rendered from the records, first differing
   row or cue named), the manifest's numbers against the records (counts, policy packs), the
   checkpoint (its head recomputed from the last record through ``checkpoint_link``, its
   signature), and files nobody listed.

How the records are judged: :mod:`alerts.audit.verify_records`.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alerts.audit.bundle_files import BundleFormatError, read_bundle
from alerts.audit.checkpoints import Checkpoint, key_id_of, verify_checkpoint
from alerts.audit.entries import (
    StoredEntry,
    chain_hash,
    sha256_hex,
    strict_loads,
)
from alerts.audit.manifest import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    MANIFEST_NAME,
    RECORDS_NAME,
    edited_field,
    policy_packs,
    signature_ok,
)
from alerts.audit.problems import Fail, Problem, Verification, fail
from alerts.audit.verify_records import check_records
from alerts.audit.views import VIEW_FILES, render_view

__all__ = ["Problem", "Verification", "verify_bundle", "verify_files"]


def verify_bundle(path: Path, *, expect_key_id: str | None = None) -> Verification:
    """Verify the bundle directory or tar at ``path``."""
    try:
        files = read_bundle(path)
    except (BundleFormatError, OSError) as exc:
        return Verification(False, Problem("file", "unreadable", str(exc)))
    return verify_files(files, expect_key_id=expect_key_id)


def verify_files(files: Mapping[str, bytes], *, expect_key_id: str | None = None
                 ) -> Verification:
    """Verify a bundle given as ``name -> bytes``."""
    try:
        return _verify(files, expect_key_id)
    except Fail as failure:
        return Verification(False, failure.problem)


# -- manifest ------------------------------------------------------------------------------
def _manifest(files: Mapping[str, bytes], expect_key_id: str | None) -> dict[str, Any]:
    raw = files.get(MANIFEST_NAME)
    if raw is None:
        raise fail("manifest", "removed", "manifest.json is missing", field=MANIFEST_NAME)
    try:
        manifest = strict_loads(raw)
    except ValueError as exc:
        raise fail("manifest", "unreadable", f"manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise fail("manifest", "unreadable", "manifest.json is not a JSON object")
    if not signature_ok(manifest):
        pointer, how = edited_field(manifest)
        raise fail("manifest", how, f"manifest signature does not verify: field {pointer} was "
                    f"{how}" + (" (or its signed digest)" if how == "edited"
                                and pointer != "/signature" else ""), field=pointer)
    layout = (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    if raw != layout:
        raise fail("manifest", "edited", "manifest.json was re-written (same signed content, "
                    "different bytes)", field=MANIFEST_NAME)
    if manifest["key_id"] != key_id_of(manifest["public_key"]):
        raise fail("manifest", "mismatch", "manifest key_id is not the id of its public_key",
                    field="/key_id")
    if expect_key_id is not None and manifest["key_id"] != expect_key_id:
        raise fail("manifest", "mismatch", f"bundle is signed by key {manifest['key_id']}, "
                    f"not the expected {expect_key_id}", field="/key_id")
    if (manifest["format"], manifest["version"]) != (BUNDLE_FORMAT, BUNDLE_VERSION):
        raise fail("manifest", "mismatch", f"not a {BUNDLE_FORMAT} v{BUNDLE_VERSION} bundle",
                    field="/format")
    _check_shape(manifest)
    return manifest


_HEX = str  # checked for shape only; hashes are compared, never trusted
_SHAPE: dict[str, Any] = {
    "room_id": str, "created_at": float,
    "window": {"from": (float, None), "to": (float, None)},
    "records": {"file": str, "count": int, "in_window": int, "counts": dict,
                "first_seq": (int, None), "last_seq": (int, None),
                "anchor_hash": (_HEX, None), "head_hash": (_HEX, None)},
    "view": {"format": str, "file": (str, None)},
    "files": dict, "evidence": {"clips": int, "absent": list}, "policy_packs": list,
    "checkpoint": (dict, None), "checkpoint_public_key": (str, None),
    "checkpoint_link": list, "key_id": str, "public_key": str}


def _shape_ok(value: Any, shape: Any) -> bool:
    options = shape if isinstance(shape, tuple) else (shape,)
    for option in options:
        if option is None and value is None:
            return True
        if isinstance(option, type) and isinstance(value, option) and not isinstance(value, bool):
            return True
    return False


def _check_shape(manifest: Mapping[str, Any]) -> None:
    """A manifest signed by *some* key may still be malformed (a forger's own key): refuse it
    with the field named rather than crash on it."""
    for name, shape in _SHAPE.items():
        value = manifest[name]
        if isinstance(shape, dict):
            if not isinstance(value, dict) or set(value) != set(shape):
                raise fail("manifest", "unreadable", f"manifest /{name} is malformed",
                            field=f"/{name}")
            for key, inner in shape.items():
                if not _shape_ok(value[key], inner):
                    raise fail("manifest", "unreadable", f"manifest /{name}/{key} is "
                                "malformed", field=f"/{name}/{key}")
        elif not _shape_ok(value, shape):
            raise fail("manifest", "unreadable", f"manifest /{name} is malformed",
                        field=f"/{name}")
    records = manifest["records"]
    ends = (records["first_seq"], records["last_seq"], records["anchor_hash"],
            records["head_hash"])
    if records["count"] == 0:
        good = all(end is None for end in ends)
    else:
        good = (None not in ends and records["last_seq"] - records["first_seq"] + 1
                == records["count"])
    if not good:
        raise fail("manifest", "mismatch", "manifest /records count and seq range disagree",
                    field="/records/count")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in
               manifest["files"].items()) or not all(
               isinstance(sha, str) for sha in manifest["evidence"]["absent"]) or not all(
               isinstance(leaf, str) and len(leaf) == 64 for leaf in
               manifest["checkpoint_link"]):
        raise fail("manifest", "unreadable", "manifest /files, /evidence/absent or "
                    "/checkpoint_link is malformed", field="/files")


# -- the rest ------------------------------------------------------------------------------
def _evidence(files: Mapping[str, bytes], manifest: Mapping[str, Any],
              entries: Sequence[StoredEntry]) -> set[str]:
    absent = set(manifest["evidence"]["absent"])
    listed: set[str] = set()
    for entry in entries:
        sha = entry.blob_sha256
        if sha is None:
            continue
        name = f"clips/{sha}.wav"
        if sha in absent:
            continue
        listed.add(name)
        data = files.get(name)
        if data is None:
            raise fail("evidence", "removed", f"evidence of record seq {entry.seq} was "
                        f"removed: {name} is missing", seq=entry.seq, field=name)
        if sha256_hex(data) != sha:
            raise fail("evidence", "altered", f"evidence of record seq {entry.seq} was "
                        f"altered: {name} does not hash to its name", seq=entry.seq,
                        field=name)
    return listed


def _view(files: Mapping[str, bytes], manifest: Mapping[str, Any],
          entries: Sequence[StoredEntry]) -> set[str]:
    view = manifest["view"]
    name = view["file"]
    expected_name = VIEW_FILES.get(view["format"])
    if name != expected_name:
        raise fail("manifest", "mismatch", f"view {name!r} does not match format "
                    f"{view['format']!r}", field="/view")
    if name is None:
        return set()
    actual = files.get(name)
    if actual is None:
        raise fail("view", "removed", f"{name} is missing", field=name)
    expected = render_view(view["format"], entries, manifest["room_id"])
    if actual == expected:
        return {name}
    if view["format"] == "csv":
        want = list(csv.reader(io.StringIO(expected.decode("utf-8"))))
        try:
            got = list(csv.reader(io.StringIO(actual.decode("utf-8"))))
        except (UnicodeDecodeError, csv.Error):
            got = []
        for row, (a, b) in enumerate(zip(want, got, strict=False)):
            if a != b:
                seq = int(a[0]) if row > 0 else None
                raise fail("view", "altered", f"{name} row {row + 1} was altered"
                            + (f" (record seq {seq})" if seq is not None else " (header)"),
                            seq=seq, line=row + 1, field=name)
        raise fail("view", "altered", f"{name} was altered (rows added or removed at row "
                    f"{min(len(want), len(got)) + 1})", field=name,
                    line=min(len(want), len(got)) + 1)
    want_blocks = expected.decode("utf-8").split("\n\n")
    got_blocks = actual.decode("utf-8", errors="replace").split("\n\n")
    for cue, (want_block, got_block) in enumerate(zip(want_blocks, got_blocks, strict=False)):
        if want_block != got_block:
            cue_id = want_block.split("\n", 1)[0]
            cue_seq = int(cue_id) if cue_id.isdigit() else None
            raise fail("view", "altered", f"{name} cue {cue} was altered"
                        + (f" (record seq {cue_seq})" if cue_seq is not None else " (header)"),
                        seq=cue_seq, line=cue, field=name)
    raise fail("view", "altered", f"{name} was altered (cues added or removed)", field=name)


def _numbers(manifest: Mapping[str, Any], entries: Sequence[StoredEntry]) -> None:
    info = manifest["records"]
    counts = dict(sorted(Counter(e.kind for e in entries).items()))
    window = manifest["window"]
    since, until = window["from"], window["to"]
    in_window = sum(1 for e in entries if (since is None or e.occurred_at >= since)
                    and (until is None or e.occurred_at < until))
    checks = [("/records/count", info["count"], len(entries)),
              ("/records/counts", info["counts"], counts),
              ("/records/in_window", info["in_window"], in_window),
              ("/policy_packs", manifest["policy_packs"], policy_packs(entries))]
    for pointer, stated, actual in checks:
        if stated != actual:
            raise fail("manifest", "mismatch", f"manifest {pointer} says {stated!r}, the "
                        f"records give {actual!r}", field=pointer)


def _checkpoint(manifest: Mapping[str, Any], entries: Sequence[StoredEntry]) -> int | None:
    raw, link = manifest["checkpoint"], manifest["checkpoint_link"]
    if raw is None:
        if entries:
            raise fail("checkpoint", "removed", "no checkpoint covers the records",
                        field="/checkpoint")
        return None
    try:
        checkpoint = Checkpoint.from_dict(raw)
    except ValueError as exc:
        raise fail("checkpoint", "unreadable", str(exc), field="/checkpoint") from exc
    public = manifest["checkpoint_public_key"]
    if not isinstance(public, str) or not verify_checkpoint(checkpoint, public):
        raise fail("checkpoint", "mismatch", "checkpoint signature does not verify",
                    field="/checkpoint/signature")
    if not entries or checkpoint.room_id != manifest["room_id"]:
        raise fail("checkpoint", "mismatch", "checkpoint is for another room or export",
                    field="/checkpoint/room_id")
    head = entries[-1].entry_hash
    for leaf in link:
        head = chain_hash(head, leaf)
    if checkpoint.seq != entries[-1].seq + len(link) or head != checkpoint.head_hash:
        raise fail("checkpoint", "mismatch", f"the records do not lead to the checkpoint's "
                    f"head at seq {checkpoint.seq}", field="/checkpoint_link")
    return checkpoint.seq


def _verify(files: Mapping[str, bytes], expect_key_id: str | None) -> Verification:
    manifest = _manifest(files, expect_key_id)
    listed: dict[str, str] = manifest["files"]
    records_name = manifest["records"]["file"]
    if records_name != RECORDS_NAME:
        raise fail("manifest", "mismatch", f"records file {records_name!r}",
                    field="/records/file")
    raw = files.get(RECORDS_NAME)
    if raw is None:
        raise fail("file", "removed", f"{RECORDS_NAME} is missing", field=RECORDS_NAME)
    entries = check_records(raw, manifest)
    if sha256_hex(raw) != listed.get(RECORDS_NAME):
        raise fail("file", "altered", f"{RECORDS_NAME} differs from its signed sha256 "
                    "(line breaks or trailing bytes)", field=RECORDS_NAME)
    _numbers(manifest, entries)
    known = {MANIFEST_NAME, RECORDS_NAME}
    known |= _evidence(files, manifest, entries)
    known |= _view(files, manifest, entries)
    for name in sorted(set(files) | set(listed)):
        if name == MANIFEST_NAME:
            continue
        if name not in files:
            raise fail("file", "removed", f"{name} is listed in the manifest but missing",
                        field=name)
        if name not in listed or name not in known:
            raise fail("file", "inserted", f"{name} is not part of the export", field=name)
        if sha256_hex(files[name]) != listed[name]:
            raise fail("file", "altered", f"{name} differs from its signed sha256", field=name)
    checkpoint_seq = _checkpoint(manifest, entries)
    return Verification(
        True, None, manifest["room_id"], len(entries),
        entries[0].seq if entries else None, entries[-1].seq if entries else None,
        manifest["key_id"], checkpoint_seq)

