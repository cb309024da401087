"""`roomwarden worker audit` on the real broker with a real SQLite audit store: every kind of
record (transcripts, alerts, evidence, escalations, reviews, gaps) lands in its room's chain
once -- replays included -- the chains verify and are checkpointed, bad records go to the
dead-letter topic with their reasons, offsets are committed after the store has the poll."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from alerts.audit import AuditSettings, open_store
from alerts.audit_records import RECORDED_KINDS
from alerts.envelope import KafkaRecord
from alerts.segment_record import DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER, DLQ_REASON_HEADER
from roomwarden.broker import create_topics, free_port
from roomwarden.cli_worker_audit import run_audit_worker
from roomwarden.settings import Settings
from roomwarden.worker_audit import AuditWorkerSettings
from tests.asr_worker_harness import SESSION_TIMEOUT_MS, TopicWatcher, committed, produce
from tests.audit_records_harness import room_records

pytestmark = pytest.mark.integration


def audit_topic_names(run: str) -> dict[str, str]:
    return {**{kind: f"wa-{run}.{kind}" for kind in RECORDED_KINDS}, "dlq": f"wa-{run}.dlq"}


def configure(bootstrap: str, run: str, topics: dict[str, str], tmp_path: Path
              ) -> tuple[Settings, AuditSettings, AuditWorkerSettings]:
    settings = Settings()
    settings.instance = f"wa-{run}"
    settings.kafka.bootstrap_servers = bootstrap
    settings.kafka.transcripts_topic = topics["transcript"]
    settings.kafka.alerts_topic = topics["alert"]
    settings.kafka.gaps_topic = topics["gap"]
    settings.kafka.escalations_topic = topics["escalation"]
    settings.kafka.reviews_topic = topics["review"]
    settings.kafka.evidence_topic = topics["evidence"]
    audit = AuditSettings(url=f"sqlite:///{tmp_path / 'audit.db'}",
                          key_path=tmp_path / "audit-key.pem", checkpoint_every_s=0.5)
    worker = AuditWorkerSettings(
        group_id=f"wa-{run}-audit", dlq_topic=topics["dlq"], max_batch=7,
        session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=1000,
        metrics_host="127.0.0.1", metrics_port=free_port())
    return settings, audit, worker


async def test_audit_worker_records_every_kind_once_and_the_chains_verify(
        kafka_broker: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    topics = audit_topic_names(run)
    # Created up front: a consumer subscribing to a topic that does not exist yet would only
    # see its partitions at its next metadata refresh (minutes away).
    await create_topics(kafka_broker, topics.values(), partitions=3)
    rooms = [room_records(f"{run}-room-{i}", speaker=f"s{i}", offset=10.0 + i,
                          topics=topics) for i in range(4)]
    good = [r for room in rooms for r in room.records.values()]
    alert = rooms[0].records["alert"]
    evidence = rooms[1].records["evidence"]
    bad: list[tuple[KafkaRecord, str]] = [
        (KafkaRecord(topics["alert"], b"x", [], b"hello"), "not_a_cloudevent"),
        (dataclasses.replace(rooms[2].records["transcript"], topic=topics["alert"]),
         "wrong_type"),
        (dataclasses.replace(alert, value=alert.value.replace(b'"severity":"medium"',
                                                              b'"severity":"huge"')),
         "bad_data"),
        (dataclasses.replace(evidence, value=evidence.value[:-2] + b"\x00\x00"),
         "checksum_mismatch"),
    ]
    # Replays (a worker upstream re-processed a batch): the same events again, same ids.
    replays = [rooms[0].records["alert"], rooms[3].records["evidence"],
               rooms[1].records["review"]]
    records = [*good[:10], bad[0][0], *good[10:], bad[1][0], bad[2][0], bad[3][0], *replays]
    where = await produce(kafka_broker, records)
    bad_at = {(r.topic, where[records.index(r)]): reason for r, reason in bad}

    settings, audit, worker = configure(kafka_broker, run, topics, tmp_path)
    ends: dict[str, dict[int, int]] = {}
    for record, (partition, offset) in zip(records, where, strict=True):
        ends.setdefault(record.topic, {})[partition] = max(
            ends.get(record.topic, {}).get(partition, 0), offset + 1)
    stop = asyncio.Event()
    t0 = time.monotonic()
    async with TopicWatcher(kafka_broker, topics["dlq"]) as dlq:
        task = asyncio.create_task(run_audit_worker(settings, audit, worker, stop))
        try:
            deadline = time.monotonic() + 60
            for topic, want in ends.items():
                while await committed(kafka_broker, worker.group_id, topic) != want:
                    assert time.monotonic() < deadline, f"{topic} not committed in full"
                    assert not task.done(), task
                    await asyncio.sleep(0.2)
            elapsed = time.monotonic() - t0
            await asyncio.sleep(1.0)  # the idle checkpoint ticker signs the last heads
            async with aiohttp.ClientSession() as http, http.get(
                    f"http://127.0.0.1:{worker.metrics_port}/metrics") as resp:
                metrics_text = await resp.text()
        finally:
            stop.set()
            status = await asyncio.wait_for(task, 30)
        await asyncio.sleep(0.3)  # let the watcher catch up
        letters = list(dlq.records)
    assert status == 0

    store = open_store(audit.url, key_path=audit.key_path)
    try:
        assert sorted(store.rooms()) == sorted(room.room_id for room in rooms)
        for room in rooms:
            entries = store.entries(room.room_id)
            assert [e.seq for e in entries] == list(range(len(RECORDED_KINDS)))
            assert {(e.kind, e.event_id) for e in entries} == set(room.ids.items())
            report = store.verify_room(room.room_id)
            assert report.ok and report.checkpoints >= 1, report
            head = store.checkpoints(room.room_id)[-1]
            assert head.seq == len(entries) - 1 and head.head_hash == entries[-1].entry_hash
            clip = store.find("evidence", room.ids["evidence"])
            assert clip is not None and clip.blob_sha256 is not None
            assert store.blob(clip.blob_sha256) == room.records["evidence"].value
    finally:
        store.close()
    reasons = {}
    for headers, _ in letters:
        h = dict(headers)
        topic = h["roomwarden-dlq-source-topic"].decode()
        reasons[(topic, (int(h[DLQ_PARTITION_HEADER]), int(h[DLQ_OFFSET_HEADER])))] = (
            h[DLQ_REASON_HEADER].decode())
    assert reasons == bad_at
    for kind in RECORDED_KINDS:
        assert f'roomwarden_audit_records_appended_total{{kind="{kind}"}} 4.0' in metrics_text
    assert 'roomwarden_audit_records_duplicate_total{kind="alert"} 1.0' in metrics_text
    assert "roomwarden_worker_audit_dead_lettered_total" in metrics_text
    print(f"\nworker audit: {len(records)} records ({len(bad)} bad, {len(replays)} replays) "
          f"over {len(RECORDED_KINDS)} topics -> {len(good)} entries in {len(rooms)} rooms, "
          f"all committed {elapsed:.1f} s after start (group join included)")
