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

How the records are judged: every line that parses, is canonical JSON, belongs to the room and
whose ``entry_hash`` matches its own content is a *candidate*. Walking back from the signed head
through ``prev_hash`` picks out the genuine records (each step is fixed by a hash the signer
vouched for, so no forgery can join). If every seq from first to last is found:

- the first line out of place is ``reordered`` when it is a genuine record of another seq (the
  seq expected there is named), ``inserted`` when it is not genuine or repeats a record;

otherwise a record is missing, and a forward walk from the anchor finds the first one:

- ``removed`` when the line in its place is the next genuine record (or the file ends);
- ``altered`` when a line stands there that does not verify (or verifies but is not the record
  the signed chain needs: content changed and its hash recomputed).

Limit (any hash chain has it): an attacker who rewrites a *run* of records and recomputes their
hashes is caught at the run's end (the first record after it no longer links), so the
record named is the last of the run, not the first.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.audit.bundle_files import BundleFormatError, read_bundle
from alerts.audit.checkpoints import Checkpoint, key_id_of, verify_checkpoint
from alerts.audit.entries import (
    AuditInputError,
    StoredEntry,
    canonical_json,
    chain_hash,
    entry_from_record,
    leaf_hash,
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
from alerts.audit.views import VIEW_FILES, render_view

__all__ = ["Problem", "Verification", "verify_bundle", "verify_files"]


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing wrong with a bundle."""

    target: str
    """``manifest``, ``record``, ``evidence``, ``view``, ``checkpoint`` or ``file``."""
    kind: str
    """``altered``, ``removed``, ``inserted``, ``reordered`` (records, evidence, views);
    ``edited``, ``added``, ``removed`` (manifest fields); ``unreadable``, ``mismatch``..."""
    message: str
    seq: int | None = None
    """The record concerned: the altered/removed one, the one expected where a line was found
    out of order, or (inserted) the genuine record the inserted line stands before."""
    line: int | None = None
    """1-based line of the records file (or row/cue of the view) where it was found."""
    field: str | None = None
    """Manifest field (JSON Pointer) or file name concerned."""

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    problem: Problem | None = None
    room_id: str | None = None
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    key_id: str | None = None
    checkpoint_seq: int | None = None
    notes: list[str] = field(default_factory=list)


class _Fail(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _fail(target: str, kind: str, message: str, **where: Any) -> _Fail:
    return _Fail(Problem(target, kind, message, **where))


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
    except _Fail as failure:
        return Verification(False, failure.problem)


# -- manifest ------------------------------------------------------------------------------
def _manifest(files: Mapping[str, bytes], expect_key_id: str | None) -> dict[str, Any]:
    raw = files.get(MANIFEST_NAME)
    if raw is None:
        raise _fail("manifest", "removed", "manifest.json is missing", field=MANIFEST_NAME)
    try:
        manifest = strict_loads(raw)
    except ValueError as exc:
        raise _fail("manifest", "unreadable", f"manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise _fail("manifest", "unreadable", "manifest.json is not a JSON object")
    if not signature_ok(manifest):
        pointer, how = edited_field(manifest)
        raise _fail("manifest", how, f"manifest signature does not verify: field {pointer} was "
                    f"{how}" + (" (or its signed digest)" if how == "edited"
                                and pointer != "/signature" else ""), field=pointer)
    layout = (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    if raw != layout:
        raise _fail("manifest", "edited", "manifest.json was re-written (same signed content, "
                    "different bytes)", field=MANIFEST_NAME)
    if manifest["key_id"] != key_id_of(manifest["public_key"]):
        raise _fail("manifest", "mismatch", "manifest key_id is not the id of its public_key",
                    field="/key_id")
    if expect_key_id is not None and manifest["key_id"] != expect_key_id:
        raise _fail("manifest", "mismatch", f"bundle is signed by key {manifest['key_id']}, "
                    f"not the expected {expect_key_id}", field="/key_id")
    if (manifest["format"], manifest["version"]) != (BUNDLE_FORMAT, BUNDLE_VERSION):
        raise _fail("manifest", "mismatch", f"not a {BUNDLE_FORMAT} v{BUNDLE_VERSION} bundle",
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
                raise _fail("manifest", "unreadable", f"manifest /{name} is malformed",
                            field=f"/{name}")
            for key, inner in shape.items():
                if not _shape_ok(value[key], inner):
                    raise _fail("manifest", "unreadable", f"manifest /{name}/{key} is "
                                "malformed", field=f"/{name}/{key}")
        elif not _shape_ok(value, shape):
            raise _fail("manifest", "unreadable", f"manifest /{name} is malformed",
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
        raise _fail("manifest", "mismatch", "manifest /records count and seq range disagree",
                    field="/records/count")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in
               manifest["files"].items()) or not all(
               isinstance(sha, str) for sha in manifest["evidence"]["absent"]) or not all(
               isinstance(leaf, str) and len(leaf) == 64 for leaf in
               manifest["checkpoint_link"]):
        raise _fail("manifest", "unreadable", "manifest /files, /evidence/absent or "
                    "/checkpoint_link is malformed", field="/files")


# -- records -------------------------------------------------------------------------------
@dataclass(slots=True)
class _Line:
    number: int
    """1-based."""
    entry: StoredEntry | None
    consistent: bool
    error: str


def _parse_line(number: int, raw: bytes, room_id: str) -> _Line:
    try:
        record = strict_loads(raw)
        if not isinstance(record, dict):
            raise AuditInputError("not a JSON object")
        entry = entry_from_record(record)
        canonical = canonical_json(record)
    except ValueError as exc:  # AuditInputError, JSON and UTF-8 errors included
        return _Line(number, None, False, f"unreadable ({exc})")
    if canonical != raw:
        return _Line(number, entry, False, "not in canonical JSON form")
    if entry.room_id != room_id:
        return _Line(number, entry, False, f"belongs to room {entry.room_id!r}")
    if chain_hash(entry.prev_hash, leaf_hash(entry.leaf())) != entry.entry_hash:
        return _Line(number, entry, False, "content does not match its entry_hash")
    return _Line(number, entry, True, "")


def _records(raw: bytes, manifest: Mapping[str, Any]) -> list[StoredEntry]:
    info = manifest["records"]
    room_id, count = manifest["room_id"], info["count"]
    first, last = info["first_seq"], info["last_seq"]
    anchor, head = info["anchor_hash"], info["head_hash"]
    chunks = raw.split(b"\n")
    if chunks and chunks[-1] == b"":
        chunks.pop()
    lines = [_parse_line(i + 1, chunk, room_id) for i, chunk in enumerate(chunks)]
    if count == 0:
        if lines:
            raise _fail("record", "inserted", "line 1 was inserted: the export has no records",
                        line=1, seq=lines[0].entry.seq if lines[0].entry else None)
        return []
    by_hash: dict[str, int] = {}
    copies: Counter[str] = Counter()
    for index, line in enumerate(lines):
        if line.consistent and line.entry is not None:
            by_hash.setdefault(line.entry.entry_hash, index)
            copies[line.entry.entry_hash] += 1
    # Back from the signed head: genuine[seq] = line index.
    genuine: dict[int, int] = {}
    needed, seq = head, last
    while seq >= first:
        at = by_hash.get(needed)
        if at is None:
            break
        found = lines[at].entry
        if found is None or found.seq != seq:
            break
        genuine[seq] = at
        needed, seq = found.prev_hash, seq - 1
    if seq < first:
        if needed != anchor:
            raise _fail("manifest", "mismatch", f"records.anchor_hash is not seq {first}'s "
                        "prev_hash", field="/records/anchor_hash")
        _check_order(lines, genuine, first, last, copies)
        return [lines[genuine[s]].entry for s in range(first, last + 1)]  # type: ignore[misc]
    _find_missing(lines, genuine, first, anchor, seq, needed)
    raise AssertionError("unreachable: a missing record is always named")


def _describe(line: _Line) -> str:
    if line.entry is None:
        return "an unreadable line"
    return f"seq {line.entry.seq}"


def _check_order(lines: Sequence[_Line], genuine: Mapping[int, int], first: int, last: int,
                 copies: Counter[str]) -> None:
    at_line = {index: s for s, index in genuine.items()}
    for index, line in enumerate(lines):
        expected = first + index
        if expected <= last and genuine[expected] == index:
            continue
        if expected > last:
            raise _fail("record", "inserted", f"line {line.number} ({_describe(line)}) was "
                        f"inserted after the last record, seq {last}", line=line.number,
                        seq=None)
        entry = line.entry
        if index in at_line and entry is not None and copies[entry.entry_hash] == 1:
            raise _fail("record", "reordered", f"record seq {expected} is out of order: line "
                        f"{line.number} holds seq {entry.seq} and seq {expected} is on line "
                        f"{lines[genuine[expected]].number}", seq=expected, line=line.number)
        if entry is not None and line.consistent and copies[entry.entry_hash] > 1:
            raise _fail("record", "inserted", f"line {line.number} was inserted: it repeats "
                        f"seq {entry.seq}, before seq {expected}", seq=expected,
                        line=line.number)
        reason = line.error or "not a record of this chain"
        raise _fail("record", "inserted", f"line {line.number} ({_describe(line)}, {reason}) "
                    f"was inserted before seq {expected}", seq=expected, line=line.number)


def _find_missing(lines: Sequence[_Line], genuine: Mapping[int, int], first: int, anchor: str,
                  gap_seq: int, gap_hash: str) -> None:
    """Seq ``gap_seq`` (whose hash must be ``gap_hash``) is not among the records: walk
    forward from the anchor and name the first record that is missing or wrong."""
    current, expected, index = anchor, first, 0
    while index < len(lines):
        line = lines[index]
        entry = line.entry
        if not (line.consistent and entry is not None and entry.seq == expected
                and entry.prev_hash == current):
            break
        if expected >= gap_seq:  # verifies on its own, but is not the record the chain needs
            raise _fail("record", "altered", f"record seq {expected} (line {line.number}) was "
                        "altered: its content and hash were changed, so the next record no "
                        "longer links to it", seq=expected, line=line.number)
        current, expected, index = entry.entry_hash, expected + 1, index + 1
    if index == len(lines):
        raise _fail("record", "removed", f"record seq {expected} was removed (the file ends "
                    f"after {lines[-1].number if lines else 0} lines)", seq=expected,
                    line=None)
    line = lines[index]
    entry = line.entry
    if entry is not None and genuine.get(entry.seq) == index and entry.seq > expected:
        what = f"seq {expected}" if entry.seq == expected + 1 else (
            f"seq {expected}..{entry.seq - 1}")
        raise _fail("record", "removed", f"record seq {expected} was removed: line "
                    f"{line.number} holds seq {entry.seq} ({what} missing)", seq=expected,
                    line=line.number)
    reason = line.error or (f"it claims seq {entry.seq}" if entry is not None
                            and entry.seq != expected else "it does not link to the record "
                            "before it")
    raise _fail("record", "altered", f"record seq {expected} (line {line.number}) was "
                f"altered: {reason}", seq=expected, line=line.number)


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
            raise _fail("evidence", "removed", f"evidence of record seq {entry.seq} was "
                        f"removed: {name} is missing", seq=entry.seq, field=name)
        if sha256_hex(data) != sha:
            raise _fail("evidence", "altered", f"evidence of record seq {entry.seq} was "
                        f"altered: {name} does not hash to its name", seq=entry.seq,
                        field=name)
    return listed


def _view(files: Mapping[str, bytes], manifest: Mapping[str, Any],
          entries: Sequence[StoredEntry]) -> set[str]:
    view = manifest["view"]
    name = view["file"]
    expected_name = VIEW_FILES.get(view["format"])
    if name != expected_name:
        raise _fail("manifest", "mismatch", f"view {name!r} does not match format "
                    f"{view['format']!r}", field="/view")
    if name is None:
        return set()
    actual = files.get(name)
    if actual is None:
        raise _fail("view", "removed", f"{name} is missing", field=name)
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
                raise _fail("view", "altered", f"{name} row {row + 1} was altered"
                            + (f" (record seq {seq})" if seq is not None else " (header)"),
                            seq=seq, line=row + 1, field=name)
        raise _fail("view", "altered", f"{name} was altered (rows added or removed at row "
                    f"{min(len(want), len(got)) + 1})", field=name,
                    line=min(len(want), len(got)) + 1)
    want_blocks = expected.decode("utf-8").split("\n\n")
    got_blocks = actual.decode("utf-8", errors="replace").split("\n\n")
    for cue, (want_block, got_block) in enumerate(zip(want_blocks, got_blocks, strict=False)):
        if want_block != got_block:
            cue_id = want_block.split("\n", 1)[0]
            cue_seq = int(cue_id) if cue_id.isdigit() else None
            raise _fail("view", "altered", f"{name} cue {cue} was altered"
                        + (f" (record seq {cue_seq})" if cue_seq is not None else " (header)"),
                        seq=cue_seq, line=cue, field=name)
    raise _fail("view", "altered", f"{name} was altered (cues added or removed)", field=name)


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
            raise _fail("manifest", "mismatch", f"manifest {pointer} says {stated!r}, the "
                        f"records give {actual!r}", field=pointer)


def _checkpoint(manifest: Mapping[str, Any], entries: Sequence[StoredEntry]) -> int | None:
    raw, link = manifest["checkpoint"], manifest["checkpoint_link"]
    if raw is None:
        if entries:
            raise _fail("checkpoint", "removed", "no checkpoint covers the records",
                        field="/checkpoint")
        return None
    try:
        checkpoint = Checkpoint.from_dict(raw)
    except ValueError as exc:
        raise _fail("checkpoint", "unreadable", str(exc), field="/checkpoint") from exc
    public = manifest["checkpoint_public_key"]
    if not isinstance(public, str) or not verify_checkpoint(checkpoint, public):
        raise _fail("checkpoint", "mismatch", "checkpoint signature does not verify",
                    field="/checkpoint/signature")
    if not entries or checkpoint.room_id != manifest["room_id"]:
        raise _fail("checkpoint", "mismatch", "checkpoint is for another room or export",
                    field="/checkpoint/room_id")
    head = entries[-1].entry_hash
    for leaf in link:
        head = chain_hash(head, leaf)
    if checkpoint.seq != entries[-1].seq + len(link) or head != checkpoint.head_hash:
        raise _fail("checkpoint", "mismatch", f"the records do not lead to the checkpoint's "
                    f"head at seq {checkpoint.seq}", field="/checkpoint_link")
    return checkpoint.seq


def _verify(files: Mapping[str, bytes], expect_key_id: str | None) -> Verification:
    manifest = _manifest(files, expect_key_id)
    listed: dict[str, str] = manifest["files"]
    records_name = manifest["records"]["file"]
    if records_name != RECORDS_NAME:
        raise _fail("manifest", "mismatch", f"records file {records_name!r}",
                    field="/records/file")
    raw = files.get(RECORDS_NAME)
    if raw is None:
        raise _fail("file", "removed", f"{RECORDS_NAME} is missing", field=RECORDS_NAME)
    entries = _records(raw, manifest)
    if sha256_hex(raw) != listed.get(RECORDS_NAME):
        raise _fail("file", "altered", f"{RECORDS_NAME} differs from its signed sha256 "
                    "(line breaks or trailing bytes)", field=RECORDS_NAME)
    _numbers(manifest, entries)
    known = {MANIFEST_NAME, RECORDS_NAME}
    known |= _evidence(files, manifest, entries)
    known |= _view(files, manifest, entries)
    for name in sorted(set(files) | set(listed)):
        if name == MANIFEST_NAME:
            continue
        if name not in files:
            raise _fail("file", "removed", f"{name} is listed in the manifest but missing",
                        field=name)
        if name not in listed or name not in known:
            raise _fail("file", "inserted", f"{name} is not part of the export", field=name)
        if sha256_hex(files[name]) != listed[name]:
            raise _fail("file", "altered", f"{name} differs from its signed sha256", field=name)
    checkpoint_seq = _checkpoint(manifest, entries)
    return Verification(
        True, None, manifest["room_id"], len(entries),
        entries[0].seq if entries else None, entries[-1].seq if entries else None,
        manifest["key_id"], checkpoint_seq)

