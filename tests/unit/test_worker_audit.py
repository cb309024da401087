"""The audit recorder's pieces: each topic's record read into an audit entry (or refused with
its reason), and a poll appended in one store transaction -- with a fake store at the seam,
and once with the real SQLite store (idempotent on re-delivery, chain verifies)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alerts.audit import AuditEntry, AuditInputError, StoredEntry, open_store
from alerts.audit_records import RECORDED_KINDS, BadAuditRecord, audit_entry
from alerts.envelope import KafkaRecord, decode_record
from alerts.evidence_record import METADATA_HEADER, decode_evidence
from roomwarden.settings import KafkaSettings
from roomwarden.worker_audit import (
    AuditHandler,
    AuditMetrics,
    AuditWorkerSettings,
    StoreThread,
    audit_topics,
)
from roomwarden.worker_loop import Outbox, Rejection, WorkerMetrics
from tests.audit_records_harness import consumed, room_records

ROOM = room_records("room-42")


def unix(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


# --- records -> entries -------------------------------------------------------------------


@pytest.mark.parametrize("kind", RECORDED_KINDS)
def test_each_topics_record_becomes_an_entry_of_its_room_with_the_cloudevent_id(
        kind: str) -> None:
    record = ROOM.records[kind]
    entry = audit_entry(kind, record.key, record.headers, record.value)  # type: ignore[arg-type]
    assert (entry.room_id, entry.kind, entry.event_id) == ("room-42", kind, ROOM.ids[kind])
    assert dict(record.headers)["ce_id"].decode() == entry.event_id
    if kind == "evidence":
        evidence = decode_evidence(record.headers, record.value)
        assert entry.data == evidence.metadata and entry.blob == record.value
        assert entry.occurred_at == evidence.end
        return
    _, data = decode_record(record.headers, record.value)
    assert entry.data == data and entry.blob is None  # the value as it was on Kafka
    when = {"transcript": data.get("speech", {}).get("end_time"),
            "alert": data.get("speech", {}).get("end_time"), "gap": data.get("start_time"),
            "escalation": data.get("created_at"), "review": data.get("reviewed_at")}[kind]
    assert entry.occurred_at == unix(when)


def replace_header(record: KafkaRecord, name: str, value: bytes) -> KafkaRecord:
    return dataclasses.replace(record, headers=[(k, value if k == name else v)
                                                for k, v in record.headers])


def replace_data(record: KafkaRecord, **changes: Any) -> KafkaRecord:
    data = json.loads(record.value)
    data.update(changes)
    return dataclasses.replace(record, value=json.dumps(data).encode())


ALERT = ROOM.records["alert"]


@pytest.mark.parametrize(("kind", "record", "reason", "named"), [
    ("alert", dataclasses.replace(ALERT, value=b"hello"), "not_a_cloudevent", "not JSON"),
    ("alert", dataclasses.replace(ALERT, headers=[]), "not_a_cloudevent", "ce_id"),
    ("alert", ROOM.records["transcript"], "wrong_type", "io.roomwarden.transcript.v1"),
    ("transcript", ALERT, "wrong_type", "alert"),
    ("alert", replace_header(ALERT, "ce_time", b"yesterday"), "bad_attributes", "time"),
    ("alert", replace_data(ALERT, confidence=float("nan")), "non_finite", "confidence"),
    ("alert", replace_data(ALERT, severity="apocalyptic"), "bad_data", "severity"),
    ("alert", replace_header(ALERT, "ce_id", b"0e6f3b0c-1d7c-5b7e-8f3a-2a7d9c1b4e5f"),
     "inconsistent", "alert_id"),
    ("alert", replace_header(ALERT, "ce_partitionkey", b"room-7"), "inconsistent",
     "ce_partitionkey"),
    ("alert", dataclasses.replace(ALERT, key=b"room-7"), "inconsistent", "record key"),
    ("evidence", replace_header(ROOM.records["evidence"], METADATA_HEADER, b"{}"),
     "bad_metadata", "segment_id"),
    ("evidence", dataclasses.replace(ROOM.records["evidence"], key=b"room-7"), "inconsistent",
     "record key"),
    ("evidence", ALERT, "not_evidence", "alert"),
])
def test_a_record_that_is_not_its_topics_event_is_refused_with_a_reason(
        kind: str, record: KafkaRecord, reason: str, named: str) -> None:
    with pytest.raises(BadAuditRecord) as caught:
        audit_entry(kind, record.key, record.headers, record.value)  # type: ignore[arg-type]
    assert caught.value.reason == reason, caught.value
    assert named in caught.value.detail


def test_a_record_without_a_key_is_filed_under_its_data_room() -> None:
    entry = audit_entry("alert", None, ALERT.headers, ALERT.value)
    assert entry.room_id == "room-42"


def test_audit_topics_follow_the_settings_and_must_be_distinct() -> None:
    kafka, worker = KafkaSettings(), AuditWorkerSettings()
    topics = audit_topics(kafka, worker)
    assert topics == {"roomwarden.transcripts.v1": "transcript",
                      "roomwarden.alerts.v1": "alert", "roomwarden.evidence.v1": "evidence",
                      "roomwarden.escalations.v1": "escalation",
                      "roomwarden.reviews.v1": "review", "roomwarden.gaps.v1": "gap"}
    assert list(topics.values()) == list(RECORDED_KINDS)  # append order within a poll
    kafka.reviews_topic = kafka.alerts_topic
    with pytest.raises(ValueError, match="distinct"):
        audit_topics(kafka, worker)


# --- a poll -> one append -----------------------------------------------------------------


class FakeStore:
    """Records every append call; refuses entries whose event id is in ``refuse``; raises
    ``error`` (a store failure) when set."""

    def __init__(self, refuse: Sequence[str] = (), error: Exception | None = None) -> None:
        self.calls: list[list[AuditEntry]] = []
        self.kept: dict[tuple[str, str], AuditEntry] = {}
        self.refuse = set(refuse)
        self.error = error
        self.checkpoint_calls: list[float] = []
        self.checkpoints_to_make = 0

    def append(self, entries: Sequence[AuditEntry]) -> list[StoredEntry]:
        self.calls.append(list(entries))
        if self.error is not None:
            raise self.error
        if refused := [e for e in entries if e.event_id in self.refuse]:
            raise AuditInputError(f"entry ({refused[0].kind} {refused[0].event_id!r}) refused")
        stored = []
        for e in entries:
            if (e.kind, e.event_id) not in self.kept:
                self.kept[(e.kind, e.event_id)] = e
                stored.append(StoredEntry(e.room_id, len(self.kept) - 1, e.kind, e.event_id,
                                          e.occurred_at, 0.0, dict(e.data), None, "", ""))
        return stored

    def maybe_checkpoint(self, every_s: float) -> list[object]:
        self.checkpoint_calls.append(every_s)
        made, self.checkpoints_to_make = self.checkpoints_to_make, 0
        return [object()] * made


class FakeSink:
    def __init__(self) -> None:
        self.records: list[KafkaRecord] = []

    async def publish(self, record: KafkaRecord) -> Awaitable[object]:
        self.records.append(record)
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        done.set_result((0, len(self.records) - 1))
        return done


TOPICS = {kind: kind for kind in RECORDED_KINDS}


class Rig:
    def __init__(self, store: Any) -> None:
        self.registry = CollectorRegistry()
        self.metrics = AuditMetrics(self.registry)
        self.thread = StoreThread()
        self.store = store
        self.handler = AuditHandler(topics=TOPICS, store=store, thread=self.thread,
                                    metrics=self.metrics, checkpoint_every_s=60.0)
        self.sink = FakeSink()
        self.worker_metrics = WorkerMetrics("audit")

    def outbox(self) -> Outbox:
        return Outbox(self.sink, self.worker_metrics, dlq_topic="dlq", worker="/roomwarden/t")

    async def poll(self, records: Sequence[KafkaRecord]) -> tuple[dict[str, Any], Outbox]:
        batch = []
        out = self.outbox()
        for offset, record in enumerate(records):
            r = consumed(record, offset=offset)
            decoded = self.handler.decode(r)
            if isinstance(decoded, Rejection):
                await out.dead_letter(r, decoded.reason, decoded.detail)
            else:
                batch.append((r, decoded))
        fields = await self.handler.handle(batch, out)
        await asyncio.gather(*out.acks)
        return dict(fields), out

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels or None) or 0.0


async def test_a_poll_is_appended_in_one_call_and_redelivery_counts_as_duplicates() -> None:
    rig = Rig(FakeStore())
    try:
        other = room_records("room-7", offset=40.0)
        records = [*ROOM.records.values(), *other.records.values(), ROOM.records["alert"]]
        fields, out = await rig.poll(records)
        assert len(rig.store.calls) == 1 and len(rig.store.calls[0]) == 12  # one transaction
        assert fields["entries"] == 13 and fields["appended"] == 12
        assert fields["duplicates"] == 1 and fields["refused"] == 0
        assert rig.value("roomwarden_audit_records_appended_total", kind="alert") == 2
        assert rig.value("roomwarden_audit_records_duplicate_total", kind="alert") == 1
        assert rig.value("roomwarden_audit_append_seconds_count") == 1
        assert rig.store.checkpoint_calls == [60.0] and out.dead_letters == 0

        rig.store.checkpoints_to_make = 2
        fields, _ = await rig.poll(records)  # the same poll again: Kafka re-delivered it
        assert fields["appended"] == 0 and fields["duplicates"] == 13
        assert fields["checkpoints"] == 2
        assert rig.value("roomwarden_audit_checkpoints_total") == 2
        assert rig.value("roomwarden_audit_records_duplicate_total", kind="transcript") == 2
    finally:
        rig.thread.close()


async def test_a_record_the_store_refuses_is_dead_lettered_and_the_rest_appended() -> None:
    rig = Rig(FakeStore(refuse=[ROOM.ids["gap"]]))
    try:
        fields, out = await rig.poll(list(ROOM.records.values()))
        assert fields["appended"] == 5 and fields["refused"] == 1
        assert fields["duplicates"] == 0
        assert len(rig.store.calls) == 1 + 6  # the poll, then one by one
        (letter,) = rig.sink.records
        headers = dict(letter.headers)
        assert headers["roomwarden-dlq-reason"] == b"store_refused"
        assert ROOM.ids["gap"].encode() in headers["roomwarden-dlq-detail"]
        assert letter.value == ROOM.records["gap"].value  # unchanged
        assert out.dead_letters == 1
    finally:
        rig.thread.close()


async def test_a_failing_store_fails_the_poll_so_nothing_is_committed() -> None:
    import sqlite3

    rig = Rig(FakeStore(error=sqlite3.OperationalError("disk I/O error")))
    try:
        with pytest.raises(sqlite3.OperationalError):
            await rig.poll(list(ROOM.records.values()))
        assert rig.sink.records == []  # nothing dead-lettered: the poll is retried whole
    finally:
        rig.thread.close()


async def test_bad_records_are_dead_lettered_with_their_reason_and_never_reach_the_store(
) -> None:
    rig = Rig(FakeStore())
    try:
        wrong = dataclasses.replace(ROOM.records["transcript"], topic="alert")
        fields, out = await rig.poll([ROOM.records["alert"], wrong])
        assert [e.kind for e in rig.store.calls[0]] == ["alert"]
        assert dict(rig.sink.records[0].headers)["roomwarden-dlq-reason"] == b"wrong_type"
        assert out.dead_letters == 1 and fields["entries"] == 1
    finally:
        rig.thread.close()


async def test_with_the_real_sqlite_store_every_event_is_kept_once_and_the_chain_verifies(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    rig = Rig(None)
    try:
        store = await rig.thread.call(open_store, url, key_path=tmp_path / "key.pem")
        rig.handler = AuditHandler(topics=TOPICS, store=store, thread=rig.thread,
                                   metrics=rig.metrics, checkpoint_every_s=0.0)
        other = room_records("room-7", offset=40.0)
        records = [*ROOM.records.values(), *other.records.values()]
        first, _ = await rig.poll(records)
        again, _ = await rig.poll(records[::-1])  # re-delivered (and in another order)
        assert (first["appended"], again["appended"], again["duplicates"]) == (12, 0, 12)
        assert first["checkpoints"] == 2  # both rooms' heads signed

        def check() -> None:
            for room in (ROOM, other):
                entries = store.entries(room.room_id)
                assert [e.seq for e in entries] == list(range(6))
                assert {(e.kind, e.event_id) for e in entries} == set(room.ids.items())
                assert [e.kind for e in entries] == list(RECORDED_KINDS)  # poll order
                report = store.verify_room(room.room_id)
                assert report.ok, report
                evidence = store.find("evidence", room.ids["evidence"])
                assert evidence is not None and evidence.blob_sha256 is not None
                assert store.blob(evidence.blob_sha256) == room.records["evidence"].value
            store.close()

        await rig.thread.call(check)
    finally:
        rig.thread.close()


def test_the_audit_sections_come_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from roomwarden.settings import Settings

    monkeypatch.setenv("ROOMWARDEN_AUDIT__URL", f"sqlite:///{tmp_path / 'a.db'}")
    monkeypatch.setenv("ROOMWARDEN_AUDIT__CHECKPOINT_EVERY_S", "5")
    monkeypatch.setenv("ROOMWARDEN_AUDIT_WORKER__MAX_BATCH", "9")
    monkeypatch.setenv("ROOMWARDEN_KAFKA__REVIEWS_TOPIC", "reviews.t")
    settings = Settings()
    audit, worker = settings.audit, settings.audit_worker
    assert audit.url == f"sqlite:///{tmp_path / 'a.db'}" and audit.checkpoint_every_s == 5
    assert (worker.max_batch, settings.kafka.reviews_topic, worker.group_id) == (
        9, "reviews.t", "roomwarden-audit")
