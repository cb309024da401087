"""Judging ``records.jsonl`` against the signed chain ends, naming the first bad record.

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

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alerts.audit.entries import (
    AuditInputError,
    StoredEntry,
    canonical_json,
    chain_hash,
    entry_from_record,
    leaf_hash,
    strict_loads,
)
from alerts.audit.problems import fail as _fail

__all__ = ["check_records"]


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


def check_records(raw: bytes, manifest: Mapping[str, Any]) -> list[StoredEntry]:
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


