"""Property tests (hypothesis): every tampering of an export is detected, and named.

Each example builds a random room log in a real (in-memory) SQLite store -- random kinds, data
with arbitrary Unicode and numbers, evidence clips (some shared), out-of-order event times,
other rooms interleaved, optional window and format, sometimes a checkpoint that lies past the
export -- exports it, applies ONE random mutation, and checks that ``verify`` fails and names
the right first record (and how), field or file. Untouched exports must verify.

Mutations: a record altered (a byte flipped; a field changed, with or without its hash
recomputed; its seq or room changed), removed, inserted (a duplicate, a garbage line, a forged
record chained in properly), reordered (two swapped, one moved); the records file losing its
final newline; a manifest field edited, removed or added, its signature or one of its digests
edited, or only its layout changed; an evidence clip altered or removed; a file added; a view
row (CSV) or cue (VTT) edited.

The verifier is the security boundary (immudb's lesson), so it is also fed forgeries re-signed
with an attacker's own key and garbage manifests/records: it must answer, never raise, and a
pinned key must refuse every re-signed bundle.

Case count (``--hypothesis-show-statistics`` prints them): 300 + 1500 + 800 + 600 + 300 =
3,500 examples per run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.audit import AuditEntry, AuditKind, SigningKey
from alerts.audit.entries import canonical_json, chain_hash, entry_from_record, leaf_hash
from alerts.audit.export import build_bundle
from alerts.audit.manifest import flatten, sign_manifest
from alerts.audit.sqlite_store import SqliteAuditStore
from alerts.audit.verify import Problem, verify_files

ROOM = "room-α"
KINDS: list[AuditKind] = ["transcript", "alert", "gap", "review", "escalation", "evidence"]
PACKS = [{"name": "default", "version": "2026.11.3", "sha256": "a" * 64},
         {"name": "strict", "version": "1", "sha256": "b" * 64}]
SHARED_CLIPS = [b"RIFF-shared-clip-one", b"RIFF-shared-clip-two"]

KEY = SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
FAST = settings(deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

texts = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"),
                max_size=20)
numbers = st.one_of(st.integers(-(2**63), 2**63), st.floats(allow_nan=False,
                                                            allow_infinity=False))


@dataclass
class Export:
    files: dict[str, bytes]
    manifest: dict[str, Any]
    lines: list[bytes]
    first_seq: int
    fmt: str

    def with_lines(self, lines: list[bytes]) -> dict[str, bytes]:
        return {**self.files, "records.jsonl": b"".join(line + b"\n" for line in lines)}


@st.composite
def exports(draw: st.DrawFn) -> Export:
    # Deterministic clock and key: hypothesis replays examples and must draw the same way.
    store = SqliteAuditStore(":memory:", key=KEY, clock=lambda: 1_800_000_000.125,
                             keep_evidence=draw(st.sampled_from([True, True, False])))
    count = draw(st.integers(1, 16))
    base = 1.7e9
    entries = []
    for i in range(count):
        kind = draw(st.sampled_from(KINDS))
        data: dict[str, Any] = {"text": draw(texts), "speaker_id": f"s{draw(st.integers(0, 2))}",
                                "n": draw(numbers), "nested": {"ok": draw(st.booleans())}}
        if draw(st.booleans()):
            data["policy"] = draw(st.sampled_from(PACKS))
        blob = None
        if kind == "evidence":
            blob = draw(st.one_of(st.sampled_from(SHARED_CLIPS), st.binary(min_size=1,
                                                                           max_size=48)))
        at = base + draw(st.floats(0, 1000, allow_nan=False))
        entries.append(AuditEntry(ROOM, kind, f"ev-{i}", at, data, blob))
        if draw(st.integers(0, 3)) == 0:  # other rooms interleave
            entries.append(AuditEntry("other", "alert", f"other-{i}", at, {"i": i}))
    split = draw(st.integers(0, len(entries)))
    store.append(entries[:split])
    store.append(entries[split:])
    stored = store.entries(ROOM)
    since: float | None = None
    until: float | None = None
    if draw(st.booleans()):
        times = sorted(e.occurred_at for e in stored)
        since = draw(st.sampled_from(times))
        later = [t for t in times if t > since]
        bounded = draw(st.booleans())
        if later and bounded:
            until = draw(st.sampled_from(later))
    if draw(st.booleans()):
        store.checkpoint(ROOM)  # a stored checkpoint, possibly past the export's last record
    fmt = draw(st.sampled_from(["jsonl", "csv", "vtt"]))
    bundle = build_bundle(store, ROOM, since=since, until=until, fmt=fmt, now=1_800_000_001.5)
    store.close()
    lines = bundle.files["records.jsonl"].split(b"\n")[:-1]
    assert bundle.manifest["records"]["count"] == len(lines) >= 1
    return Export(bundle.files, bundle.manifest, lines, bundle.manifest["records"]["first_seq"],
                  fmt)


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def failed(files: dict[str, bytes]) -> Problem:
    result = verify_files(files)
    assert not result.ok, "tampering went undetected"
    assert result.problem is not None
    return result.problem


# -- untouched ------------------------------------------------------------------------------
@settings(FAST, max_examples=300)
@given(exports())
def test_untouched_export_verifies(export: Export) -> None:
    result = verify_files(export.files)
    assert result.ok, result.problem
    assert result.records == len(export.lines)
    assert result.key_id == export.manifest["key_id"]
    assert verify_files(export.files, expect_key_id="0" * 16).problem is not None


# -- records --------------------------------------------------------------------------------
def _flip_hex(value: str) -> str:
    return ("1" if value[0] == "0" else "0") + value[1:]


def _changed(record: dict[str, Any], name: str) -> Any:
    value = record[name]
    if name == "data":
        return {**value, "text": value.get("text", "") + "!"}
    if name in ("occurred_at", "recorded_at"):
        return value + 0.25
    if name == "kind":
        return "alert" if value != "alert" else "gap"
    if name in ("event_id", "room_id"):
        return value + "x"
    if name == "seq":
        return value + 3
    if name in ("prev_hash", "entry_hash"):
        return _flip_hex(value)
    if name == "blob_sha256":
        return None if value else hashlib.sha256(b"x").hexdigest()
    return 2  # v


def _rehash(record: dict[str, Any]) -> bytes:
    try:
        entry = entry_from_record(record)
    except ValueError:
        return canonical_json(record)
    return canonical_json({**record, "entry_hash": chain_hash(entry.prev_hash,
                                                               leaf_hash(entry.leaf()))})


RECORD_FIELDS = ["data", "occurred_at", "recorded_at", "kind", "event_id", "seq", "room_id",
                 "prev_hash", "entry_hash", "blob_sha256", "v"]


@settings(FAST, max_examples=1500)
@given(exports(), st.data())
def test_record_mutation_is_named(export: Export, data: st.DataObject) -> None:
    lines, first, n = list(export.lines), export.first_seq, len(export.lines)
    ops = ["flip", "field", "field_rehash", "remove", "insert_dup", "insert_garbage",
           "insert_forged", "no_final_newline"]
    if n >= 2:
        ops += ["swap", "move"]
    op = data.draw(st.sampled_from(ops), label="op")
    pos = data.draw(st.integers(0, n - 1), label="pos")
    if op == "flip":
        offset = data.draw(st.integers(0, len(lines[pos]) - 1), label="offset")
        mask = data.draw(st.integers(1, 255), label="mask")
        line = bytearray(lines[pos])
        line[offset] ^= mask
        lines[pos] = bytes(line)
        expect = ("record", "altered", first + pos)
    elif op in ("field", "field_rehash"):
        record = json.loads(lines[pos])
        # (changing entry_hash and then recomputing it would change nothing)
        fields = [f for f in RECORD_FIELDS if op == "field" or f != "entry_hash"]
        name = data.draw(st.sampled_from(fields), label="field")
        record[name] = _changed(record, name)
        lines[pos] = _rehash(record) if op == "field_rehash" else canonical_json(record)
        expect = ("record", "altered", first + pos)
    elif op == "remove":
        del lines[pos]
        expect = ("record", "removed", first + pos)
    elif op.startswith("insert"):
        at = data.draw(st.integers(0, n), label="at")
        if op == "insert_dup":
            source = data.draw(st.integers(0, n - 1), label="source")
            new = lines[source]
        elif op == "insert_garbage":
            new = data.draw(st.sampled_from([b"", b"{}", b"null", b"[1,2]", b"\xff\xfe",
                                             b'{"seq":0}']), label="garbage")
        else:  # a record forged to chain in at `at`, hash recomputed: the strongest forgery
            template = json.loads(lines[min(at, n - 1)])
            prev = (export.manifest["records"]["anchor_hash"] if at == 0
                    else json.loads(lines[at - 1])["entry_hash"])
            template.update(seq=first + at, prev_hash=prev,
                            data={"text": "forged", "speaker_id": "s9"})
            new = _rehash(template)
        lines.insert(at, new)
        problem = failed(export.with_lines(lines))
        assert (problem.target, problem.kind) == ("record", "inserted"), problem
        allowed = {at + 1}
        if op == "insert_dup" and source == at:  # two identical adjacent lines: either one
            allowed.add(at + 2)
        assert problem.line in allowed, problem
        return
    elif op == "no_final_newline":
        files = export.with_lines(lines)
        files["records.jsonl"] = files["records.jsonl"][:-1]
        problem = failed(files)
        assert (problem.target, problem.kind, problem.field) == (
            "file", "altered", "records.jsonl"), problem
        return
    elif op == "swap":
        other = data.draw(st.integers(0, n - 1).filter(lambda i: i != pos), label="other")
        low, high = sorted((pos, other))
        lines[low], lines[high] = lines[high], lines[low]
        expect = ("record", "reordered", first + low)
    else:  # move one record elsewhere
        target = data.draw(st.integers(0, n - 1).filter(lambda i: i != pos), label="to")
        lines.insert(target, lines.pop(pos))
        expect = ("record", "reordered", first + min(pos, target))
    problem = failed(export.with_lines(lines))
    assert (problem.target, problem.kind, problem.seq) == expect, problem


# -- manifest -------------------------------------------------------------------------------
def _other_value(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str):
        return _flip_hex(value) if value else "x"
    if value is None:
        return 0
    return [1] if value == [] else {"x": 1} if value == {} else None


def _parent_and_key(manifest: dict[str, Any], pointer: str) -> tuple[Any, str | int]:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    node: Any = manifest
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    return node, int(last) if isinstance(node, list) else last


def _related(found: str | None, pointer: str) -> bool:
    """The named field is the one changed, inside it, or the container it was removed from."""
    return found is not None and (found == pointer or found.startswith(pointer + "/")
                                  or pointer.startswith(found + "/"))


@settings(FAST, max_examples=800)
@given(exports(), st.data())
def test_manifest_edit_is_named(export: Export, data: st.DataObject) -> None:
    manifest = json.loads(export.files["manifest.json"])
    body = {k: v for k, v in manifest.items() if k not in ("field_sha256", "signature")}
    leaves = sorted(flatten(body))
    op = data.draw(st.sampled_from(["edit", "remove", "add", "signature", "digest", "layout",
                                    "drop"]), label="op")
    files = dict(export.files)
    expect_kind: str | None
    if op == "layout":
        files["manifest.json"] = files["manifest.json"].replace(b"\n", b"\n ", 1)
        problem = failed(files)
        assert (problem.target, problem.field) == ("manifest", "manifest.json"), problem
        return
    if op == "drop":
        del files["manifest.json"]
        assert (failed(files).target, failed(files).kind) == ("manifest", "removed")
        return
    if op == "edit":
        pointer = data.draw(st.sampled_from(leaves), label="pointer")
        parent, key = _parent_and_key(manifest, pointer)
        parent[key] = _other_value(parent[key])
        expect_kind = "edited"
    elif op == "remove":
        pointer = data.draw(st.sampled_from(sorted(set(leaves) | {f"/{k}" for k in manifest})),
                            label="pointer")
        parent, key = _parent_and_key(manifest, pointer)
        del parent[key]
        # removing a list item shifts the ones after it: those read as edited
        expect_kind = "removed" if isinstance(parent, dict) else None
    elif op == "add":
        def node_at(pointer: str) -> Any:
            if not pointer:
                return manifest
            parent, key = _parent_and_key(manifest, pointer)
            return parent[key]

        parents = {p.rsplit("/", 1)[0] for p in leaves if p.count("/") > 1}
        dicts = ["", *sorted(p for p in parents if isinstance(node_at(p), dict))]
        where = data.draw(st.sampled_from(dicts), label="node")
        node = node_at(where)
        node["zz_added"] = data.draw(st.sampled_from([0, "x", None, [1]]), label="value")
        pointer, expect_kind = f"{where}/zz_added", "added"
    elif op == "signature":
        manifest["signature"] = _flip_hex(manifest["signature"])
        pointer, expect_kind = "/signature", "edited"
    else:  # one of the signed digests
        pointer = data.draw(st.sampled_from(sorted(manifest["field_sha256"])), label="digest")
        manifest["field_sha256"][pointer] = _flip_hex(manifest["field_sha256"][pointer])
        expect_kind = "edited"
    files["manifest.json"] = manifest_bytes(manifest)
    problem = failed(files)
    assert problem.target == "manifest", problem
    assert _related(problem.field, pointer), (pointer, problem)
    if problem.field == pointer:
        assert expect_kind is None or problem.kind == expect_kind, problem


# -- evidence, files, views -----------------------------------------------------------------
@settings(FAST, max_examples=600)
@given(exports(), st.data())
def test_evidence_file_and_view_mutation_is_named(export: Export, data: st.DataObject
                                                  ) -> None:
    files = dict(export.files)
    clips = sorted(name for name in files if name.startswith("clips/"))
    ops = ["add_file"] + (["alter_clip", "remove_clip"] if clips else []) + (
        ["view"] if export.fmt != "jsonl" else [])
    op = data.draw(st.sampled_from(ops), label="op")
    if op == "add_file":
        name = data.draw(st.sampled_from(["extra.txt", "clips/extra.wav", "records.csv.bak"]),
                         label="name")
        if name in files:
            return
        files[name] = b"not part of it"
        problem = failed(files)
        assert (problem.target, problem.kind, problem.field) == ("file", "inserted", name)
        return
    if op == "view":
        view = export.manifest["view"]["file"]
        text = files[view].decode("utf-8").split("\n")
        if export.fmt == "csv":
            row = data.draw(st.integers(1, len(export.lines)), label="row")
            line_index, seq = row, export.first_seq + row - 1
            # seq (first cell) untouched, so the row still names its record
            col = data.draw(st.integers(len(text[line_index].split(",")[0]) + 1,
                                        max(len(text[line_index]) - 1,
                                            len(text[line_index].split(",")[0]) + 1)),
                            label="col")
        else:
            cues = [i for i, line in enumerate(text) if "-->" in line]
            cue_line = data.draw(st.sampled_from(cues), label="cue")
            line_index, seq = cue_line + 1, int(text[cue_line - 1])
            col = data.draw(st.integers(0, max(0, len(text[line_index]) - 1)), label="col")
        old = text[line_index]
        col = min(col, len(old))
        text[line_index] = old[:col] + ("Q" if old[col:col + 1] != "Q" else "R") + old[col + 1:]
        files[view] = "\n".join(text).encode("utf-8")
        problem = failed(files)
        assert (problem.target, problem.kind, problem.seq) == ("view", "altered", seq), problem
        return
    name = data.draw(st.sampled_from(clips), label="clip")
    sha = name[len("clips/"):-len(".wav")]
    owner = next(json.loads(line)["seq"] for line in export.lines
                 if json.loads(line)["blob_sha256"] == sha)
    if op == "alter_clip":
        files[name] = files[name] + b"\x00"
        expect = ("evidence", "altered", owner)
    else:
        del files[name]
        expect = ("evidence", "removed", owner)
    problem = failed(files)
    assert (problem.target, problem.kind, problem.seq) == expect, problem


# -- forgeries and garbage ------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                        allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=10)


@settings(FAST, max_examples=300)
@given(exports(), st.data())
def test_verifier_never_crashes_and_pinning_refuses_resigned_bundles(
        export: Export, data: st.DataObject) -> None:
    files = dict(export.files)
    op = data.draw(st.sampled_from(["resign", "garbage_manifest", "garbage_json_manifest",
                                    "garbage_records", "deep_records"]), label="op")
    if op == "resign":  # anything changed, then signed with the attacker's own key
        manifest = json.loads(files["manifest.json"])
        pointer = data.draw(st.sampled_from(sorted(flatten(manifest))), label="pointer")
        parent, key = _parent_and_key(manifest, pointer)
        parent[key] = data.draw(json_values, label="value")
        attacker = SigningKey(Ed25519PrivateKey.generate())
        manifest.update(key_id=attacker.key_id, public_key=attacker.public_key_hex)
        files["manifest.json"] = manifest_bytes(sign_manifest(manifest, attacker))
        verify_files(files)  # answers, whatever it finds
        pinned = verify_files(files, expect_key_id=export.manifest["key_id"])
        assert not pinned.ok
        return
    if op == "garbage_manifest":
        files["manifest.json"] = data.draw(st.binary(max_size=64), label="bytes")
    elif op == "garbage_json_manifest":
        files["manifest.json"] = json.dumps(data.draw(json_values, label="json")).encode()
    elif op == "garbage_records":
        files["records.jsonl"] = data.draw(st.binary(max_size=200), label="bytes")
    else:
        files["records.jsonl"] = b"[" * 100_000 + b"\n" + b'{"v":1e400}\n' + b"NaN\n"
    result = verify_files(files)
    assert not result.ok and result.problem is not None
