"""`roomwarden worker policy` on the real broker with the default rule pack: transcripts in,
alerts out (exactly the flagged ones, once after dedupe by id, even when a transcript is
replayed), unreadable records on the dead-letter topic with their reasons, offsets committed
after the acks. No model: the transcripts are built from the stage frames."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections import Counter

import pytest

from alerts.envelope import KafkaRecord, alert_record, decode_record, transcript_record
from alerts.segment_record import DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER, DLQ_REASON_HEADER
from alerts.transcript_decode import with_speech_ended_at
from asr.frames import Transcript
from policy.escalation import EscalationPolicy, Escalator
from roomwarden.app import load_policy
from roomwarden.broker import create_topics
from roomwarden.cli_worker import run_policy_worker
from roomwarden.settings import Settings
from tests.asr_worker_harness import SESSION_TIMEOUT_MS, TopicWatcher, committed, produce
from tests.conftest import build_alert, build_segment, build_transcript

pytestmark = pytest.mark.integration


def transcripts(run: str) -> list[tuple[Transcript, int]]:
    """(transcript, alerts the default pack must raise for it)."""
    out = []
    for i in range(12):
        room = f"{run}-room-{i % 4}"
        segment = build_segment(room=room, speaker=f"s{i}", offset=10.0 + i)
        if i % 3 == 0:
            out.append((build_transcript(segment, text="you moron"), 1))
        elif i % 3 == 1:
            out.append((build_transcript(segment, text="what a lovely idea"), 0))
        else:  # low confidence: still an alert, suggestion capped at review
            out.append((build_transcript(segment, text="shut up you idiot", confidence=0.4,
                                         confidence_class="low"), 1))
    rejected = build_segment(room=f"{run}-room-0", speaker="ghost", offset=99.0)
    out.append((build_transcript(rejected, text="you idiot", confidence_class="rejected"),
                0))
    return out


def worker_settings(bootstrap: str, instance: str, topics: dict[str, str]) -> Settings:
    """A policy worker on the test broker: its own group, topics and a free metrics port."""
    settings = Settings()
    settings.instance = instance
    settings.kafka.bootstrap_servers = bootstrap
    settings.kafka.transcripts_topic = topics["transcripts"]
    settings.kafka.alerts_topic = topics["alerts"]
    w = settings.policy_worker
    w.group_id, w.dlq_topic, w.max_batch = f"{instance}-policy", topics["dlq"], 5
    w.session_timeout_ms, w.heartbeat_interval_ms = SESSION_TIMEOUT_MS, 1000
    w.metrics_host, w.metrics_port = "127.0.0.1", 0
    return settings


async def all_committed(bootstrap: str, group: str, topic: str, ends: dict[int, int],
                        worker: asyncio.Task[int], timeout_s: float = 60.0) -> None:
    """Wait until the worker's group committed every partition of ``topic`` to ``ends``."""
    deadline = time.monotonic() + timeout_s
    while await committed(bootstrap, group, topic) != ends:
        assert time.monotonic() < deadline, "the policy worker did not commit it all"
        assert not worker.done(), worker
        await asyncio.sleep(0.2)


async def test_policy_worker_turns_transcripts_into_alerts_and_dead_letters_bad_ones(
        kafka_broker: str) -> None:
    run = uuid.uuid4().hex[:8]
    topics = {"transcripts": f"wp-{run}.transcripts", "alerts": f"wp-{run}.alerts",
              "dlq": f"wp-{run}.dlq"}
    await create_topics(kafka_broker, topics.values(), partitions=4)
    cases = transcripts(run)
    good = [with_speech_ended_at(transcript_record(t, source="/roomwarden/asr-1",
                                                   topic=topics["transcripts"]), time.time())
            for t, _ in cases]
    nan = dataclasses.replace(good[1], value=good[1].value.replace(b'"confidence":0.91',
                                                                  b'"confidence":NaN'))
    assert nan.value != good[1].value
    bad: list[tuple[KafkaRecord, str]] = [
        (KafkaRecord(topics["transcripts"], b"r", [], b"hello"), "not_a_transcript"),
        (alert_record(build_alert(), source="/x", topic=topics["transcripts"]),
         "not_a_transcript"),
        (nan, "non_finite"),
    ]
    # A replayed transcript (an ASR worker re-processed its batch): its alert is published
    # again, with the same id.
    records = [*good[:6], bad[0][0], *good[6:], bad[1][0], bad[2][0], good[0]]
    where = await produce(kafka_broker, records)
    ends = {p: max(o for q, o in where if q == p) + 1 for p, _ in where}
    bad_at = {where[records.index(r)]: reason for r, reason in bad}

    settings = worker_settings(kafka_broker, f"wp-{run}", topics)
    w = settings.policy_worker
    stop = asyncio.Event()
    t0 = time.monotonic()
    async with TopicWatcher(kafka_broker, topics["alerts"]) as alerts, \
            TopicWatcher(kafka_broker, topics["dlq"]) as dlq:
        worker = asyncio.create_task(run_policy_worker(settings, stop))
        try:
            await all_committed(kafka_broker, w.group_id, topics["transcripts"], ends, worker)
            elapsed = time.monotonic() - t0
            await asyncio.sleep(0.3)  # let the watchers catch up
        finally:
            stop.set()
            status = await asyncio.wait_for(worker, 30)
    assert status == 0

    events = [decode_record(h, v) for h, v in alerts.records]
    ids = Counter(attrs["id"] for attrs, _ in events)
    expected = {(t.segment.segment_id, t.text) for t, n in cases if n}
    assert {(d["segment_id"], d["text"]) for _, d in events} == expected
    assert len(ids) == sum(n for _, n in cases)  # once each after dedupe by ce_id ...
    assert sorted(ids.values())[-1] == 2  # ... the replayed transcript's alert came twice
    for attrs, data in events:
        assert attrs["id"] == data["alert_id"] and attrs["source"] == f"/roomwarden/wp-{run}"
        assert data["suggestion"] == ("review" if data["confidence_class"] == "low"
                                      else data["suggestion"])
    reasons = {(int(dict(h)[DLQ_PARTITION_HEADER]), int(dict(h)[DLQ_OFFSET_HEADER])):
               dict(h)[DLQ_REASON_HEADER].decode() for h, _ in dlq.records}
    assert reasons == bad_at
    print(f"\nworker policy: {len(records)} records ({len(bad)} bad) -> {len(events)} alerts, "
          f"{len(dlq.records)} dead letters, all committed {elapsed:.1f} s after start "
          "(group join included)")


async def test_policy_worker_escalates_a_rant_like_the_pure_ladder(kafka_broker: str) -> None:
    """Distributed mode escalates too: a speaker's 12-utterance rant through the worker gives
    exactly the escalations the pure ladder gives for the same alerts, in order -- a handful,
    not one per alert -- committed only after their acks."""
    run = uuid.uuid4().hex[:8]
    topics = {"transcripts": f"we-{run}.transcripts", "alerts": f"we-{run}.alerts",
              "escalations": f"we-{run}.escalations", "dlq": f"we-{run}.dlq"}
    await create_topics(kafka_broker, topics.values(), partitions=1)
    rant = [build_transcript(build_segment(room=f"{run}-room", speaker="mallory",
                                           offset=10.0 + 4 * i),
                             text="you moron" if i % 2 else "you are worthless")
            for i in range(12)]
    expected_ladder = Escalator(EscalationPolicy())
    engine = load_policy(Settings())
    expected = [e for t in rant for e in expected_ladder.observe(engine.evaluate(t))]
    assert 2 <= len(expected) < 12 and expected[0].action == "host_warning"

    records = [with_speech_ended_at(transcript_record(t, source="/roomwarden/asr-1",
                                                      topic=topics["transcripts"]), time.time())
               for t in rant]
    where = await produce(kafka_broker, records)
    ends = {p: max(o for q, o in where if q == p) + 1 for p, _ in where}
    settings = worker_settings(kafka_broker, f"we-{run}", topics)
    settings.kafka.escalations_topic = topics["escalations"]
    w = settings.policy_worker
    stop = asyncio.Event()
    async with TopicWatcher(kafka_broker, topics["escalations"]) as escalations:
        worker = asyncio.create_task(run_policy_worker(settings, stop))
        try:
            await all_committed(kafka_broker, w.group_id, topics["transcripts"], ends, worker)
            await asyncio.sleep(0.3)
        finally:
            stop.set()
            assert await asyncio.wait_for(worker, 30) == 0
    got = [decode_record(h, v)[1] for h, v in escalations.records]
    assert [(d["escalation_id"], d["action"]) for d in got] == [
        (e.escalation_id, e.action) for e in expected]
    print(f"\nworker policy: a 12-utterance rant -> {len(got)} escalations "
          f"({', '.join(d['action'] for d in got)})")
