"""The audit store on a real SQLite file: chain, append, idempotence, durability, reading."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from alerts.audit import AuditEntry, AuditInputError, open_store
from alerts.audit.entries import chain_hash, genesis_hash, leaf_hash


def alert(room: str, event_id: str, at: float, **extra: object) -> AuditEntry:
    data = {"alert_id": event_id, "room_id": room, "text": "hello", **extra}
    return AuditEntry(room, "alert", event_id, at, data)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


def test_chain_is_contiguous_and_hashes_link(url: str) -> None:
    with open_store(url) as store:
        out = store.append([alert("r1", f"a{i}", 100.0 + i) for i in range(5)]
                           + [alert("r2", "b0", 50.0)])
        r1 = [e for e in out if e.room_id == "r1"]
        assert [e.seq for e in r1] == [0, 1, 2, 3, 4]
        assert r1[0].prev_hash == genesis_hash("r1")
        for before, after in zip(r1, r1[1:], strict=False):
            assert after.prev_hash == before.entry_hash
        for entry in out:
            assert entry.entry_hash == chain_hash(entry.prev_hash, leaf_hash(entry.leaf()))
        assert [e.seq for e in out if e.room_id == "r2"] == [0]
        assert store.verify_room("r1").ok and store.verify_room("r2").ok


def test_append_is_idempotent_by_kind_and_event_id(url: str) -> None:
    with open_store(url) as store:
        first = store.append([alert("r1", "a1", 1.0), alert("r1", "a1", 1.0)])
        assert len(first) == 1
        again = store.append([alert("r1", "a1", 1.0), alert("r1", "a2", 2.0)])
        assert [(e.event_id, e.seq) for e in again] == [("a2", 1)]
        # the same id under another kind is another event
        other = store.append([AuditEntry("r1", "transcript", "a1", 1.0, {"text": "x"})])
        assert [e.seq for e in other] == [2]
        assert len(store.entries("r1")) == 3


def test_bad_entry_rejects_the_whole_batch(url: str) -> None:
    with open_store(url) as store:
        with pytest.raises(AuditInputError, match="entry 1 .*occurred_at"):
            store.append([alert("r1", "a1", 1.0), alert("r1", "a2", float("nan"))])
        with pytest.raises(AuditInputError, match="not canonical JSON"):
            store.append([alert("r1", "a1", 1.0, score=float("inf"))])
        with pytest.raises(AuditInputError, match="retention job"):
            store.append([AuditEntry("r1", "purge", "p", 1.0, {})])
        with pytest.raises(AuditInputError, match="only evidence"):
            store.append([AuditEntry("r1", "alert", "x", 1.0, {}, blob=b"1")])
        with pytest.raises(AuditInputError, match="key 3"):
            store.append([AuditEntry("r1", "alert", "x", 1.0, {"m": {3: "x"}})])
        with pytest.raises(AuditInputError, match="surrogate"):
            store.append([AuditEntry("r1", "alert", "x", 1.0, {"t": "\ud800"})])
        assert store.entries("r1") == []
        assert store.rooms() == []


def test_data_reads_back_exactly_as_hashed(url: str) -> None:
    data = {"z": [1, 2.5, -0.0, 1e300], "a": {"b": "深圳 \u0000 \"q\""}, "t": (1, 2)}
    with open_store(url) as store:
        (stored,) = store.append([AuditEntry("r1", "transcript", "t1", 1.25, data)])
    with open_store(url) as store:
        (back,) = store.entries("r1")
    assert back == stored
    assert back.data["t"] == [1, 2]
    assert back.entry_hash == chain_hash(back.prev_hash, leaf_hash(back.leaf()))


def test_entries_window_kinds_limit_and_find(url: str) -> None:
    with open_store(url) as store:
        store.append([alert("r1", "a0", 10.0), alert("r1", "a1", 30.0),
                      AuditEntry("r1", "gap", "g0", 20.0, {}), alert("r1", "a2", 40.0)])
        assert [e.event_id for e in store.entries("r1", since=20.0, until=40.0)] == ["a1", "g0"]
        assert [e.event_id for e in store.entries("r1", kinds=["gap"])] == ["g0"]
        assert [e.event_id for e in store.entries("r1", limit=2)] == ["a0", "a1"]
        assert store.entries("r1", kinds=[]) == []
        found = store.find("gap", "g0")
        assert found is not None and found.seq == 2
        assert store.find("gap", "nope") is None


def test_evidence_blob_kept_or_not(tmp_path: Path) -> None:
    wav = b"RIFF....WAVEfmt " + bytes(range(256))
    entry = AuditEntry("r1", "evidence", "seg1", 5.0, {"segment_id": "seg1"}, blob=wav)
    with open_store(f"sqlite:///{tmp_path / 'a.db'}") as store:
        (stored,) = store.append([entry])
        assert stored.blob_sha256 is not None and store.blob(stored.blob_sha256) == wav
    with open_store(f"sqlite:///{tmp_path / 'b.db'}", keep_evidence=False) as store:
        (stored,) = store.append([entry])
        assert stored.blob_sha256 is not None and store.blob(stored.blob_sha256) is None
        assert store.verify_room("r1").ok


def test_durable_across_reopen_and_wal_full(url: str, tmp_path: Path) -> None:
    with open_store(url) as store:
        store.append([alert("r1", f"a{i}", float(i)) for i in range(3)])
        store.checkpoint("r1")
    db = tmp_path / "audit.db"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with open_store(url) as store:
        assert store.verify_room("r1").ok
        (more,) = store.append([alert("r1", "a3", 3.0)])
        assert more.seq == 3
        report = store.verify_room("r1")
        assert report.ok and report.entries == 4 and report.checkpoints == 1


def test_append_survives_a_killed_process(tmp_path: Path) -> None:
    """A child appends and is SIGKILLed right after append() returned: it is all there."""
    db = tmp_path / "audit.db"
    script = (
        "import os, signal, sys\n"
        "from alerts.audit import AuditEntry, open_store\n"
        f"s = open_store('sqlite:///{db}')\n"
        "for i in range(20):\n"
        "    s.append([AuditEntry('r1', 'alert', f'a{i}', float(i), {'i': i})])\n"
        "print('done', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    run = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2],
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "done", run.stderr
    with open_store(f"sqlite:///{db}") as store:
        assert [e.seq for e in store.entries("r1")] == list(range(20))
        assert store.verify_room("r1").ok


def test_concurrent_writers_keep_the_chain_contiguous(url: str) -> None:
    with open_store(url) as store:
        def write(worker: int) -> None:
            for i in range(25):
                store.append([alert("r1", f"w{worker}-{i}", float(i))])

        threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [e.seq for e in store.entries("r1")] == list(range(100))
        assert store.verify_room("r1").ok


def test_two_store_objects_on_one_file(url: str) -> None:
    with open_store(url) as one, open_store(url) as two:
        one.append([alert("r1", "a0", 0.0)])
        two.append([alert("r1", "a1", 1.0)])
        one.append([alert("r1", "a1", 1.0), alert("r1", "a2", 2.0)])
        assert [e.event_id for e in two.entries("r1")] == ["a0", "a1", "a2"]
        assert one.verify_room("r1").ok


def test_verify_room_names_a_tampered_row(url: str, tmp_path: Path) -> None:
    with open_store(url) as store:
        store.append([alert("r1", f"a{i}", float(i)) for i in range(5)])
    conn = sqlite3.connect(tmp_path / "audit.db")
    conn.execute("UPDATE audit_entries SET data = '{\"text\":\"forged\"}' WHERE seq = 2")
    conn.commit()
    conn.close()
    with open_store(url) as store:
        report = store.verify_room("r1")
    assert not report.ok and report.bad_seq == 2 and "content" in (report.problem or "")


def test_verify_room_names_a_deleted_row(url: str, tmp_path: Path) -> None:
    with open_store(url) as store:
        store.append([alert("r1", f"a{i}", float(i)) for i in range(5)])
    conn = sqlite3.connect(tmp_path / "audit.db")
    conn.execute("DELETE FROM audit_entries WHERE seq = 3")
    conn.commit()
    conn.close()
    with open_store(url) as store:
        report = store.verify_room("r1")
    assert not report.ok and report.bad_seq == 3 and "missing" in (report.problem or "")


def test_key_file_created_0600_and_reused(url: str, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "audit.pem"
    with open_store(url, key_path=key) as store:
        key_id = store.key.key_id
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    with open_store(url, key_path=key) as store:
        assert store.key.key_id == key_id and len(key_id) == 16


def test_bad_url() -> None:
    with pytest.raises(ValueError, match="sqlite:/// or postgresql://"):
        open_store("mysql://x")
    with pytest.raises(ValueError, match="three slashes"):
        open_store("sqlite://relative.db")
