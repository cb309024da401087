"""Signed checkpoints and the signing key: good ones verify, edited ones and wrong keys don't."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from alerts.audit import AuditEntry, SigningKey, open_store, verify_checkpoint
from alerts.audit.checkpoints import Checkpoint, KeyFileError, key_id_of
from alerts.audit.entries import genesis_hash
from alerts.audit.sqlite_store import SqliteAuditStore


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def entry(room: str, event_id: str) -> AuditEntry:
    return AuditEntry(room, "alert", event_id, 1.0, {"alert_id": event_id})


@pytest.fixture
def store(tmp_path: Path) -> SqliteAuditStore:
    return SqliteAuditStore(str(tmp_path / "a.db"), key=SigningKey.generate(), clock=Clock())


def test_checkpoint_signs_the_head(store: SqliteAuditStore) -> None:
    stored = store.append([entry("r1", "a"), entry("r1", "b")])
    checkpoint = store.checkpoint("r1")
    assert (checkpoint.room_id, checkpoint.seq, checkpoint.head_hash) == (
        "r1", 1, stored[-1].entry_hash)
    assert checkpoint.key_id == key_id_of(store.key.public_key_hex) == store.key.key_id
    assert verify_checkpoint(checkpoint, store.key.public_key_hex)
    assert store.checkpoints("r1") == [checkpoint]


def test_empty_room_checkpoint_is_the_genesis(store: SqliteAuditStore) -> None:
    checkpoint = store.checkpoint("nobody")
    assert (checkpoint.seq, checkpoint.head_hash) == (-1, genesis_hash("nobody"))
    assert verify_checkpoint(checkpoint, store.key.public_key_hex)


@pytest.mark.parametrize("change", [
    {"seq": 0}, {"head_hash": "0" * 64}, {"room_id": "r2"}, {"signed_at": 1.0},
    {"key_id": "0" * 16}, {"signature": "00" * 64}, {"signature": "not hex"},
])
def test_edited_checkpoint_is_refused(store: SqliteAuditStore, change: dict[str, object]
                                      ) -> None:
    store.append([entry("r1", "a"), entry("r1", "b")])
    checkpoint = store.checkpoint("r1")
    edited = dataclasses.replace(checkpoint, **change)  # type: ignore[arg-type]
    assert not verify_checkpoint(edited, store.key.public_key_hex)


def test_checkpoint_under_another_key_is_refused(store: SqliteAuditStore) -> None:
    store.append([entry("r1", "a")])
    checkpoint = store.checkpoint("r1")
    other = SigningKey.generate()
    assert not verify_checkpoint(checkpoint, other.public_key_hex)
    forged = other.checkpoint("r1", checkpoint.seq, checkpoint.head_hash, checkpoint.signed_at)
    forged = dataclasses.replace(forged, key_id=store.key.key_id)  # claims the real key's id
    assert not verify_checkpoint(forged, store.key.public_key_hex)
    assert not verify_checkpoint(checkpoint, "zz")


def test_checkpoint_from_dict_is_strict(store: SqliteAuditStore) -> None:
    raw = store.checkpoint("r1").to_dict()
    assert Checkpoint.from_dict(raw).to_dict() == raw
    with pytest.raises(ValueError, match="fields"):
        Checkpoint.from_dict({**raw, "extra": 1})
    with pytest.raises(ValueError, match="seq"):
        Checkpoint.from_dict({**raw, "seq": "1"})
    with pytest.raises(ValueError, match="seq"):
        Checkpoint.from_dict({**raw, "seq": True})


def test_maybe_checkpoint_period_and_only_rooms_with_news(tmp_path: Path) -> None:
    clock = Clock()
    store = SqliteAuditStore(str(tmp_path / "a.db"), key=SigningKey.generate(), clock=clock)
    store.append([entry("r1", "a"), entry("r2", "b")])
    assert [c.room_id for c in store.maybe_checkpoint(60)] == ["r1", "r2"]
    clock.now += 10
    store.append([entry("r1", "c")])
    assert store.maybe_checkpoint(60) == []          # within the period
    clock.now += 60
    made = store.maybe_checkpoint(60)                 # only r1 has news
    assert [(c.room_id, c.seq) for c in made] == [("r1", 1)]
    clock.now += 60
    assert store.maybe_checkpoint(60) == []           # nothing new anywhere
    report = store.verify_room("r1")
    assert report.ok and report.checkpoints == 2


def test_verify_room_refuses_a_tampered_checkpoint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with open_store(url) as store:
        store.append([entry("r1", "a"), entry("r1", "b")])
        store.checkpoint("r1")
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute("UPDATE audit_checkpoints SET seq = 0")
    conn.commit()
    conn.close()
    with open_store(url) as store:
        report = store.verify_room("r1")
    assert not report.ok and "bad signature" in (report.problem or "")


def test_verify_room_refuses_a_checkpoint_naming_another_head(tmp_path: Path) -> None:
    """A correctly signed checkpoint whose head is not in the stored chain (a fork)."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with open_store(url) as store:
        store.append([entry("r1", "a"), entry("r1", "b")])
        fork = store.key.checkpoint("r1", 1, "ab" * 32, 5.0)
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.execute("INSERT INTO audit_checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                 (fork.room_id, fork.seq, fork.head_hash, fork.signed_at, fork.key_id,
                  fork.signature))
    conn.commit()
    conn.close()
    with open_store(url) as store:
        report = store.verify_room("r1")
    assert not report.ok and "another head" in (report.problem or "")


def test_key_file_refused_when_group_readable(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    SigningKey.load_or_create(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        SigningKey.load_or_create(path)


def test_key_file_must_be_ed25519(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, pem)
    os.close(fd)
    with pytest.raises(KeyFileError, match="not an Ed25519 key"):
        SigningKey.load_or_create(path)
    garbage = tmp_path / "junk.pem"
    fd = os.open(garbage, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"junk")
    os.close(fd)
    with pytest.raises(KeyFileError, match="not a readable"):
        SigningKey.load_or_create(garbage)


def test_checkpoints_survive_a_key_rotation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with open_store(url, key_path=tmp_path / "old.pem") as store:
        store.append([entry("r1", "a")])
        store.checkpoint("r1")
    with open_store(url, key_path=tmp_path / "new.pem") as store:
        store.append([entry("r1", "b")])
        store.checkpoint("r1")
        assert len(store.public_keys()) == 2
        report = store.verify_room("r1")
    assert report.ok and report.checkpoints == 2
