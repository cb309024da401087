"""Retention: old entries go, a signed purge record says what went, the chain still verifies."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alerts.audit import AuditEntry, SigningKey
from alerts.audit.checkpoints import purge_signature_ok
from alerts.audit.export import build_bundle
from alerts.audit.retention import DAY_S, purge_expired, purge_room
from alerts.audit.sqlite_store import SqliteAuditStore
from alerts.audit.verify import verify_files

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> SqliteAuditStore:
    return SqliteAuditStore(str(tmp_path / "a.db"), key=SigningKey.generate(), clock=clock)


def evidence(room: str, event_id: str, wav: bytes) -> AuditEntry:
    return AuditEntry(room, "evidence", event_id, T0, {"segment_id": event_id}, blob=wav)


def alert(room: str, event_id: str) -> AuditEntry:
    return AuditEntry(room, "alert", event_id, T0, {"alert_id": event_id})


def test_purge_leaves_a_signed_record_and_a_verifying_chain(store: SqliteAuditStore,
                                                           clock: Clock) -> None:
    old = store.append([alert("r1", "a0"), alert("r1", "a1"),
                        evidence("r1", "e0", b"RIFF-old"), evidence("r1", "e1", b"RIFF-both"),
                        alert("r2", "b0")])
    clock.now += 100 * DAY_S
    kept = store.append([alert("r1", "a2"), evidence("r1", "e2", b"RIFF-both")])
    clock.now += 90 * DAY_S  # the first batch is now 190 days old, the second 90

    reports = purge_expired(store, 180)
    assert [(r.room_id, r.count, r.first_seq, r.last_seq) for r in reports] == [
        ("r1", 4, 0, 3), ("r2", 1, 0, 0)]
    r1 = reports[0]
    data = r1.record.data
    assert r1.record.kind == "purge" and r1.record.seq == 6
    assert data["purged"] == {
        "count": 4, "first_seq": 0, "last_seq": 3, "first_hash": old[0].entry_hash,
        "last_hash": old[3].entry_hash, "first_recorded_at": T0, "last_recorded_at": T0,
        "kinds": {"alert": 2, "evidence": 2}, "evidence_deleted": 1}
    assert data["retention_days"] == 180.0 and data["cutoff"] == clock.now - 180 * DAY_S
    assert purge_signature_ok(data, store.public_keys())
    assert not purge_signature_ok({**data, "cutoff": 0.0}, store.public_keys())

    # only the clip no kept entry needs is gone
    assert store.blob(old[2].blob_sha256 or "") is None
    assert store.blob(kept[1].blob_sha256 or "") == b"RIFF-both"
    assert [e.seq for e in store.entries("r1")] == [4, 5, 6]
    state = store.room_state("r1")
    assert state is not None and (state.anchor_seq, state.anchor_hash) == (4, old[3].entry_hash)
    for room in ("r1", "r2"):
        report = store.verify_room(room)
        assert report.ok, report.problem
    # a checkpoint covers the purge record
    assert store.checkpoints("r1")[-1].seq == 6

    # appending and exporting after a purge still verify
    store.append([alert("r1", "a3")])
    assert store.verify_room("r1").ok
    bundle = build_bundle(store, "r1", fmt="csv")
    assert bundle.manifest["records"]["anchor_hash"] == old[3].entry_hash
    assert verify_files(bundle.files).ok


def test_nothing_old_enough_purges_nothing(store: SqliteAuditStore, clock: Clock) -> None:
    store.append([alert("r1", "a0")])
    clock.now += 10 * DAY_S
    assert purge_expired(store, 180) == []
    assert store.verify_room("r1").ok


def test_purge_only_takes_a_prefix(store: SqliteAuditStore, clock: Clock) -> None:
    """An old entry after a newer one is kept (no holes in the chain)."""
    store.append([alert("r1", "a0")])
    clock.now += 10
    store.append([alert("r1", "a1")])
    clock.now -= 5  # the clock stepped back: a2 looks older than a1
    store.append([alert("r1", "a2")])
    report = purge_room(store, "r1", before=clock.now + 1)  # a0 and a2 "old", a1 not
    assert report is not None and (report.first_seq, report.last_seq) == (0, 0)
    assert [e.event_id for e in store.entries("r1")] == ["a1", "a2", "r1/0-0"]
    assert store.verify_room("r1").ok


def test_purge_everything_then_again(store: SqliteAuditStore, clock: Clock) -> None:
    store.append([alert("r1", "a0"), alert("r1", "a1")])
    clock.now += 200 * DAY_S
    first = purge_expired(store, 180)
    assert [e.kind for e in store.entries("r1")] == ["purge"]
    assert store.verify_room("r1").ok
    store.append([alert("r1", "a2")])
    clock.now += 200 * DAY_S
    second = purge_expired(store, 180)  # purges the first purge record too
    assert second[0].record.data["purged"]["kinds"] == {"alert": 1, "purge": 1}
    assert second[0].first_seq == first[0].record.seq
    report = store.verify_room("r1")
    assert report.ok, report.problem


def test_a_prefix_deleted_behind_the_stores_back_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    store = SqliteAuditStore(str(db), key=SigningKey.generate())
    out = store.append([alert("r1", f"a{i}") for i in range(4)])
    store.close()
    conn = sqlite3.connect(db)  # what someone with the database but not the key could do
    conn.execute("DELETE FROM audit_entries WHERE seq < 2")
    conn.execute("UPDATE audit_rooms SET anchor_seq = 2, anchor_hash = ?", (out[1].entry_hash,))
    conn.commit()
    conn.close()
    store = SqliteAuditStore(str(db), key=SigningKey.generate())
    report = store.verify_room("r1")
    assert not report.ok and "no signed purge record" in (report.problem or "")


def test_retention_days_must_be_positive(store: SqliteAuditStore) -> None:
    with pytest.raises(ValueError, match="positive"):
        purge_expired(store, 0)
