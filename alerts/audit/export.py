"""Export a room's audit records as a self-verifying bundle for an auditor.

Bundle layout (a directory, or the same files in a ``.tar`` / ``.tar.gz``)::

    manifest.json          signed description of everything below (see "Manifest")
    records.jsonl          the verifiable core: one canonical-JSON record per line, seq order
    records.csv|.vtt       --format csv|vtt only: a human-readable view derived from the records
    clips/<sha256>.wav     evidence audio of the exported evidence records (when kept)

Which records: the *contiguous* seq range from the first to the last of the room's entries
with ``from <= occurred_at < to``. A chain can only be checked without gaps, so an entry
inside that range whose event time lies outside the window (a late transcript) is exported
too; ``records.in_window`` counts the ones inside. Nothing before the range is needed to verify
it: ``records.anchor_hash`` is the ``prev_hash`` of the first record (the chain head just
before the window), ``records.head_hash`` the hash of the last.

Manifest fields: ``format``, ``version``, ``room_id``, ``window`` (``from``/``to``, Unix s or
null), ``created_at``; ``records`` (``file``, ``count``, ``in_window``, ``counts`` per kind,
``first_seq``, ``last_seq``, ``anchor_hash``, ``head_hash``); ``view`` (``format``, ``file``);
``files`` (sha256 of every other file in the bundle); ``evidence`` (``clips`` in the bundle,
``absent``: sha256 of evidence the store no longer has -- not kept, or purged); ``policy_packs``
(the distinct ``policy`` {name, version, sha256} objects in the records); ``checkpoint`` (a
signed checkpoint at or after the last record: the earliest stored one, else one signed now),
``checkpoint_public_key``, ``checkpoint_link`` (leaf hashes of the entries between the last
record and the checkpoint, so the verifier can recompute the checkpoint's head without their
content); ``key_id``, ``public_key``; ``field_sha256`` and ``signature`` (see
:mod:`alerts.audit.manifest`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alerts.audit.bundle_files import bundle_tar_bytes, write_bundle
from alerts.audit.checkpoints import Checkpoint
from alerts.audit.entries import AuditError, StoredEntry, record_line, sha256_hex
from alerts.audit.manifest import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    MANIFEST_NAME,
    RECORDS_NAME,
    policy_packs,
    sign_manifest,
)
from alerts.audit.store import AuditStore
from alerts.audit.views import VIEW_FILES, render_view

__all__ = ["FORMATS", "Bundle", "ExportFormat", "build_bundle", "export_room"]

ExportFormat = Literal["jsonl", "csv", "vtt"]
FORMATS: tuple[str, ...] = ("jsonl", "csv", "vtt")


@dataclass(frozen=True, slots=True)
class Bundle:
    """An export in memory: file name -> bytes (``manifest.json`` included)."""

    files: dict[str, bytes]
    manifest: dict[str, Any]

    def write(self, path: Path) -> Path:
        """To a new directory, or a tar if ``path`` ends in .tar / .tar.gz / .tgz."""
        return write_bundle(self.files, path, mtime=self.manifest["created_at"])

    def tar_bytes(self, *, gzip: bool = True) -> bytes:
        """The bundle as one tar (for an HTTP download)."""
        return bundle_tar_bytes(self.files, gzip=gzip, mtime=self.manifest["created_at"])


def _checkpoint_for(store: AuditStore, room_id: str, last_seq: int) -> Checkpoint:
    for checkpoint in store.checkpoints(room_id, min_seq=last_seq):
        if checkpoint.key_id in store.public_keys():
            return checkpoint
    return store.checkpoint(room_id)


def _counts(entries: Iterable[StoredEntry]) -> dict[str, int]:
    return dict(sorted(Counter(entry.kind for entry in entries).items()))


def build_bundle(store: AuditStore, room_id: str, *, since: float | None = None,
                 until: float | None = None, fmt: str = "jsonl",
                 now: float | None = None) -> Bundle:
    """The bundle of ``room_id``'s records with ``since <= occurred_at < until``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if since is not None and until is not None and until <= since:
        raise ValueError(f"empty window: to ({until}) must be after from ({since})")
    state = store.room_state(room_id)
    if state is None:
        raise AuditError(f"room {room_id!r} is not in the audit store")
    span = store.seq_window(room_id, since, until)
    entries = [] if span is None else store.entries_by_seq(room_id, *span)
    if span is not None and [e.seq for e in entries] != list(range(span[0], span[1] + 1)):
        raise AuditError(f"room {room_id!r}: stored chain has a hole in seq {span[0]}..{span[1]}"
                         " (run `roomwarden audit verify-room`)")
    files: dict[str, bytes] = {RECORDS_NAME: b"".join(record_line(e) for e in entries)}
    clips, absent = 0, set()
    for entry in entries:
        sha = entry.blob_sha256
        if sha is None or f"clips/{sha}.wav" in files or sha in absent:
            continue
        blob = store.blob(sha)
        if blob is None:
            absent.add(sha)
        else:
            files[f"clips/{sha}.wav"] = blob
            clips += 1
    view_file = VIEW_FILES.get(fmt)
    if view_file is not None:
        files[view_file] = render_view(fmt, entries, room_id)
    checkpoint, link, checkpoint_key = None, [], None
    if entries:
        last = entries[-1].seq
        found = _checkpoint_for(store, room_id, last)
        link = [e.leaf_hash() for e in store.iter_entries(room_id, last + 1, found.seq)]
        checkpoint, checkpoint_key = found.to_dict(), store.public_keys()[found.key_id]

    def in_window(entry: StoredEntry) -> bool:
        return ((since is None or entry.occurred_at >= since)
                and (until is None or entry.occurred_at < until))

    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "room_id": room_id,
        "window": {"from": None if since is None else float(since),
                   "to": None if until is None else float(until)},
        "created_at": float(time.time() if now is None else now),
        "records": {
            "file": RECORDS_NAME, "count": len(entries),
            "in_window": sum(1 for e in entries if in_window(e)), "counts": _counts(entries),
            "first_seq": entries[0].seq if entries else None,
            "last_seq": entries[-1].seq if entries else None,
            "anchor_hash": entries[0].prev_hash if entries else None,
            "head_hash": entries[-1].entry_hash if entries else None},
        "view": {"format": fmt, "file": view_file},
        "files": {name: sha256_hex(data) for name, data in sorted(files.items())},
        "evidence": {"clips": clips, "absent": sorted(absent)},
        "policy_packs": policy_packs(entries),
        "checkpoint": checkpoint, "checkpoint_public_key": checkpoint_key,
        "checkpoint_link": link,
        "key_id": store.key.key_id, "public_key": store.key.public_key_hex}
    sign_manifest(manifest, store.key)
    files[MANIFEST_NAME] = (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n"
                            ).encode("utf-8")
    return Bundle(files, manifest)


def export_room(store: AuditStore, room_id: str, path: Path, *, since: float | None = None,
                until: float | None = None, fmt: str = "jsonl") -> Bundle:
    """Build the bundle and write it to ``path`` (a new directory, or a .tar / .tar.gz)."""
    bundle = build_bundle(store, room_id, since=since, until=until, fmt=fmt)
    bundle.write(path)
    return bundle
