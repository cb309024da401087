"""Export bundles (jsonl / csv / vtt; directory / tar), windows, and the CLI around them."""

from __future__ import annotations

import csv
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alerts.audit import AuditEntry, AuditError, SigningKey
from alerts.audit.bundle_files import BundleFormatError, read_bundle
from alerts.audit.export import build_bundle
from alerts.audit.sqlite_store import SqliteAuditStore
from alerts.audit.verify import verify_bundle, verify_files
from alerts.audit.views import CSV_COLUMNS
from roomwarden.cli_audit import audit_app, export_command, parse_time, verify_command

T0 = 1_800_000_000.0
PACK = {"name": "default", "version": "2026.11.3", "sha256": "c" * 64}
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(32)


def speech(start: float, end: float) -> dict[str, str]:
    from alerts.audit.views import rfc3339
    return {"start_time": rfc3339(start), "end_time": rfc3339(end)}


def room_log() -> list[AuditEntry]:
    return [
        AuditEntry("r1", "transcript", "t0", T0 + 1,
                   {"text": "hello, \"world\"", "speaker_id": "s1", "speaker_name": "Ann",
                    "speech": speech(T0, T0 + 1)}),
        AuditEntry("r1", "alert", "a0", T0 + 1,
                   {"text": "you idiot", "speaker_id": "s1", "category": "abuse.insult",
                    "severity": "high", "rule_id": "insult.1", "policy": PACK,
                    "speech": speech(T0, T0 + 1)}),
        AuditEntry("r1", "evidence", "seg0", T0 + 1, {"segment_id": "seg0"}, blob=WAV),
        AuditEntry("r1", "gap", "g0", T0 + 20, {"reason": "session_lost", "speaker_id": "s2"}),
        AuditEntry("r1", "transcript", "t1", T0 + 5,  # arrives late: older than the gap
                   {"text": "late line\nwith a newline", "speaker_id": "s2",
                    "speech": speech(T0 + 4, T0 + 5)}),
        AuditEntry("r1", "escalation", "x0", T0 + 30, {"action": "host_warning",
                                                        "speaker_id": "s1", "reason": "2"}),
        AuditEntry("r1", "alert", "a1", T0 + 40,
                   {"text": "again", "policy": {**PACK, "version": "2026.11.4"}}),
    ]


@pytest.fixture
def store(tmp_path: Path) -> SqliteAuditStore:
    store = SqliteAuditStore(str(tmp_path / "audit.db"),
                             key=SigningKey.load_or_create(tmp_path / "key.pem"))
    store.append(room_log())
    store.append([AuditEntry("r2", "alert", "other", T0, {"text": "elsewhere"})])
    return store


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "vtt"])
def test_every_format_verifies(store: SqliteAuditStore, fmt: str) -> None:
    bundle = build_bundle(store, "r1", fmt=fmt)
    names = set(bundle.files)
    view = {"jsonl": set(), "csv": {"records.csv"}, "vtt": {"records.vtt"}}[fmt]
    sha = store.entries("r1", kinds=["evidence"])[0].blob_sha256
    assert names == {"manifest.json", "records.jsonl", f"clips/{sha}.wav", *view}
    result = verify_files(bundle.files)
    assert result.ok, result.problem
    assert (result.records, result.first_seq, result.last_seq) == (7, 0, 6)
    manifest = bundle.manifest
    assert manifest["records"]["counts"] == {"alert": 2, "escalation": 1, "evidence": 1,
                                             "gap": 1, "transcript": 2}
    assert manifest["policy_packs"] == [PACK, {**PACK, "version": "2026.11.4"}]
    assert manifest["key_id"] == store.key.key_id and manifest["public_key"]
    assert manifest["checkpoint"]["seq"] == 6 and manifest["checkpoint_link"] == []


def test_csv_view_reads_back(store: SqliteAuditStore) -> None:
    rows = list(csv.DictReader(io.StringIO(
        build_bundle(store, "r1", fmt="csv").files["records.csv"].decode())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1]["category"] == "abuse.insult" and rows[1]["severity"] == "high"
    assert rows[0]["text"] == 'hello, "world"'
    assert rows[4]["text"] == "late line\nwith a newline"
    assert rows[0]["occurred_at"] == "2027-01-15T08:00:01.000Z"


def test_vtt_view_is_webvtt(store: SqliteAuditStore) -> None:
    text = build_bundle(store, "r1", fmt="vtt").files["records.vtt"].decode()
    assert text.startswith("WEBVTT\n\nNOTE room r1, 00:00:00.000 = ")
    blocks = text.strip().split("\n\n")[2:]
    assert len(blocks) == 7
    first = blocks[0].split("\n")
    assert first[1] == "00:00:00.000 --> 00:00:01.000"
    assert "<v Ann>[transcript] hello, \"world\"" in text
    assert "[alert high abuse.insult] you idiot" in text
    assert "late line with a newline" in text  # one cue line, never a blank line
    starts = [b.split("\n")[1].split(" --> ")[0] for b in blocks]
    assert starts == sorted(starts)


def test_window_exports_a_contiguous_range_and_verifies_alone(store: SqliteAuditStore
                                                              ) -> None:
    bundle = build_bundle(store, "r1", since=T0 + 2, until=T0 + 35)
    info = bundle.manifest["records"]
    # g0 (seq 3, t+20), t1 (seq 4, t+5), x0 (seq 5, t+30): contiguous seq 3..5
    assert (info["first_seq"], info["last_seq"], info["count"], info["in_window"]) == (
        3, 5, 3, 3)
    all_records = store.entries("r1")
    assert info["anchor_hash"] == all_records[2].entry_hash  # head before the window
    assert bundle.manifest["checkpoint_link"] == [all_records[6].leaf_hash()]
    assert bundle.manifest["evidence"] == {"clips": 0, "absent": []}
    assert verify_files(bundle.files).ok
    # a window whose range includes a record outside it (t1 at t+5 between g0 and x0)
    narrow = build_bundle(store, "r1", since=T0 + 10, until=T0 + 35)
    assert narrow.manifest["records"]["count"] == 3
    assert narrow.manifest["records"]["in_window"] == 2
    assert verify_files(narrow.files).ok


def test_empty_window_and_unknown_room(store: SqliteAuditStore) -> None:
    bundle = build_bundle(store, "r1", since=T0 + 1000)
    assert bundle.manifest["records"]["count"] == 0
    assert verify_files(bundle.files).ok
    with pytest.raises(AuditError, match="not in the audit store"):
        build_bundle(store, "nope")
    with pytest.raises(ValueError, match="format"):
        build_bundle(store, "r1", fmt="xml")
    with pytest.raises(ValueError, match="empty window"):
        build_bundle(store, "r1", since=T0 + 5, until=T0 + 5)


def test_evidence_not_kept_is_listed_absent(tmp_path: Path) -> None:
    store = SqliteAuditStore(str(tmp_path / "a.db"), key=SigningKey.generate(),
                             keep_evidence=False)
    (stored,) = store.append([AuditEntry("r1", "evidence", "s", T0, {}, blob=WAV)])
    bundle = build_bundle(store, "r1")
    assert bundle.manifest["evidence"] == {"clips": 0, "absent": [stored.blob_sha256]}
    assert verify_files(bundle.files).ok


@pytest.mark.parametrize("name", ["out", "out.tar", "out.tar.gz", "out.tgz"])
def test_write_and_verify_on_disk(store: SqliteAuditStore, tmp_path: Path, name: str) -> None:
    bundle = build_bundle(store, "r1", fmt="vtt")
    path = bundle.write(tmp_path / name)
    assert read_bundle(path) == bundle.files
    assert verify_bundle(path).ok
    assert verify_bundle(path, expect_key_id=store.key.key_id).ok
    wrong = verify_bundle(path, expect_key_id="0123456789abcdef")
    assert not wrong.ok and wrong.problem is not None and "not the expected" in str(
        wrong.problem)
    with pytest.raises(FileExistsError):
        bundle.write(path)


def test_hostile_tar_members_are_refused(tmp_path: Path) -> None:
    for member, kind in [("../escape", tarfile.REGTYPE), ("/abs", tarfile.REGTYPE),
                         ("link", tarfile.SYMTYPE)]:
        path = tmp_path / f"bad-{kind!r}-{len(member)}.tar"
        with tarfile.open(path, "w") as tar:
            info = tarfile.TarInfo(member)
            info.type = kind
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tar.addfile(info, io.BytesIO(b""))
        with pytest.raises(BundleFormatError):
            read_bundle(path)
        assert not verify_bundle(path).ok


def test_symlink_in_a_bundle_directory_is_refused(store: SqliteAuditStore,
                                                  tmp_path: Path) -> None:
    path = build_bundle(store, "r1").write(tmp_path / "b")
    os.symlink("/etc/hostname", path / "clips" / "x.wav")
    result = verify_bundle(path)
    assert not result.ok and "symbolic link" in str(result.problem)


# -- CLI ------------------------------------------------------------------------------------
def cli() -> object:
    import typer
    app = typer.Typer()
    app.command("export")(export_command)
    app.command("verify")(verify_command)
    app.add_typer(audit_app, name="audit")
    return app


def test_cli_export_then_verify(store: SqliteAuditStore, tmp_path: Path) -> None:
    store.close()
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    key = str(tmp_path / "key.pem")
    out = tmp_path / "bundle.tar.gz"
    result = runner.invoke(cli(), [  # type: ignore[arg-type]
        "export", "--room", "r1", "--from", "2027-01-15T08:00:02Z", "--to", str(T0 + 35),
        "--format", "csv", "--out", str(out), "--store", db, "--key", key])
    assert result.exit_code == 0, result.output
    assert "3 records (seq 3..5" in result.output
    ok = runner.invoke(cli(), ["verify", str(out)])  # type: ignore[arg-type]
    assert ok.exit_code == 0 and ok.output.startswith("OK: room r1, 3 records"), ok.output
    as_json = runner.invoke(cli(), ["verify", str(out), "--json"])  # type: ignore[arg-type]
    assert json.loads(as_json.output)["ok"] is True

    # tamper: drop a record from an extracted copy
    files = read_bundle(out)
    lines = files["records.jsonl"].split(b"\n")
    files["records.jsonl"] = b"\n".join(lines[:1] + lines[2:])
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for name, data in files.items():
        (tampered / name).parent.mkdir(parents=True, exist_ok=True)
        (tampered / name).write_bytes(data)
    bad = runner.invoke(cli(), ["verify", str(tampered)])  # type: ignore[arg-type]
    assert bad.exit_code == 1
    assert bad.output.startswith("FAILED: record seq 4 was removed"), bad.output

    rooms = runner.invoke(cli(), ["audit", "verify-room", "--store", db,  # type: ignore
                                  "--key", key])
    assert rooms.exit_code == 0 and "r1: ok" in rooms.output
    checkpoint = runner.invoke(cli(), ["audit", "checkpoint", "--room", "r1",  # type: ignore
                                       "--store", db, "--key", key])
    assert checkpoint.exit_code == 0 and "r1: seq 6" in checkpoint.output
    purge = runner.invoke(cli(), ["audit", "purge", "--days", "1", "--store", db,  # type: ignore
                                  "--key", key])
    assert purge.exit_code == 0 and "nothing older than 1 days" in purge.output


def test_cli_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'audit.db'}"
    missing = runner.invoke(cli(), ["export", "--room", "nope", "--store", db,  # type: ignore
                                    "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "not in the audit store" in missing.output
    bad_time = runner.invoke(cli(), ["export", "--room", "r", "--from", "yesterday",  # type: ignore
                                     "--store", db])
    assert bad_time.exit_code == 2


def test_parse_time() -> None:
    assert parse_time("1800000000") == 1_800_000_000.0
    assert parse_time("1800000000.5") == 1_800_000_000.5
    assert parse_time("2027-01-15T08:00:00Z") == T0
    assert parse_time("2027-01-15t08:00:00z") == T0
    assert parse_time("2027-01-15T10:00:00+02:00") == T0
    for bad in ("2027-01-15T08:00:00", "soon"):
        with pytest.raises(Exception, match="time zone|neither"):
            parse_time(bad)
