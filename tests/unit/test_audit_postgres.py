"""The audit store on PostgreSQL: the same behaviour as SQLite, when a server is reachable.

Set ``ROOMWARDEN_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``)
to a database the tests may create a throw-away schema in; skipped when none answers. Each test
works in its own schema (``search_path`` in the URL), dropped afterwards.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from alerts.audit import AuditEntry, SigningKey, open_store
from alerts.audit.export import build_bundle
from alerts.audit.retention import purge_room
from alerts.audit.verify import verify_files

psycopg = pytest.importorskip("psycopg", reason="psycopg not installed")

BASE_URL = os.environ.get("ROOMWARDEN_TEST_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")


def _reachable() -> str | None:
    try:
        psycopg.connect(BASE_URL, connect_timeout=2).close()
    except psycopg.Error as exc:
        return f"no PostgreSQL at {BASE_URL} ({str(exc).strip().splitlines()[0]})"
    return None


_why_not = _reachable()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")


@pytest.fixture
def url() -> Iterator[str]:
    schema = f"audit_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in BASE_URL else "?"
    yield f"{BASE_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def alert(room: str, event_id: str, at: float = 1.0) -> AuditEntry:
    return AuditEntry(room, "alert", event_id, at, {"alert_id": event_id, "text": "x"})


def test_append_idempotent_checkpoint_verify(url: str, tmp_path: Path) -> None:
    key = SigningKey.load_or_create(tmp_path / "k.pem")
    with open_store(url, key=key) as store:
        out = store.append([alert("r1", "a0"), alert("r1", "a0"), alert("r1", "a1"),
                            AuditEntry("r1", "evidence", "s0", 2.0, {}, blob=b"RIFF\x00\xff")])
        assert [e.seq for e in out] == [0, 1, 2]
        assert store.append([alert("r1", "a1")]) == []
        assert store.blob(out[2].blob_sha256 or "") == b"RIFF\x00\xff"
        checkpoint = store.checkpoint("r1")
        assert checkpoint.seq == 2
    with open_store(url, key=key) as store:  # reopen: schema exists, data durable
        assert [e.event_id for e in store.entries("r1", since=1.5)] == ["s0"]
        assert store.find("alert", "a1") is not None and store.rooms() == ["r1"]
        report = store.verify_room("r1")
        assert report.ok and report.checkpoints == 1, report.problem
        assert [c.room_id for c in store.maybe_checkpoint(0)] == []


def test_concurrent_writers_on_two_connections(url: str, tmp_path: Path) -> None:
    key = SigningKey.load_or_create(tmp_path / "k.pem")
    stores = [open_store(url, key=key) for _ in range(3)]

    def write(index: int) -> None:
        for i in range(30):
            stores[index].append([alert("r1", f"w{index}-{i}")])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.seq for e in stores[0].entries("r1")] == list(range(90))
    assert stores[0].verify_room("r1").ok
    for store in stores:
        store.close()


def test_purge_and_export_verify(url: str, tmp_path: Path) -> None:
    with open_store(url, key=SigningKey.generate()) as store:
        store.append([alert("r1", f"a{i}", float(i)) for i in range(5)])
        report = purge_room(store, "r1", before=1e12)
        assert report is not None and report.count == 5
        store.append([alert("r1", "late", 9.0)])
        assert store.verify_room("r1").ok
        bundle = build_bundle(store, "r1", fmt="csv")
        assert verify_files(bundle.files).ok
