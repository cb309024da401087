"""`roomwarden worker asr` on the real broker and the real model: killed mid-batch and restarted,
every segment is transcribed exactly once after dedupe; bad records land on the dead-letter topic
with their reasons while the worker keeps going; offsets are committed only after Kafka acked
the output."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from alerts.envelope import KafkaRecord, decode_record
from alerts.publisher import KafkaPublisher
from alerts.segment_record import (
    DLQ_OFFSET_HEADER,
    DLQ_PARTITION_HEADER,
    DLQ_REASON_HEADER,
    segment_record,
)
from roomwarden.app import build_publisher, build_recognizer
from roomwarden.broker import LocalBroker, create_topics, free_port
from roomwarden.readback import read_records
from roomwarden.settings import AsrWorkerSettings, Settings
from roomwarden.worker_asr import AsrWorker, asr_worker_metrics
from roomwarden.worker_loop import WorkerMetrics
from tests.asr_worker_harness import (
    SESSION_TIMEOUT_MS,
    TopicWatcher,
    WorkerProcess,
    bad_records,
    committed,
    dlq_positions,
    produce,
    sample_segments,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.integration


async def test_worker_killed_mid_batch_transcribes_every_segment_once_after_dedupe(
    kafka_broker: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    topics = {"segments": f"wk-{run}.segments", "transcripts": f"wk-{run}.transcripts",
              "dlq": f"wk-{run}.dlq"}
    group = f"wk-{run}-asr"
    # Created up front: a consumer subscribing to a topic that does not exist yet would only
    # see its partitions at its next metadata refresh (minutes away).
    await create_topics(kafka_broker, topics.values(), partitions=4)
    segments = await sample_segments(f"wk-{run}")
    assert len(segments) == 24
    good = [segment_record(s, source="/roomwarden/test", topic=topics["segments"])
            for s in segments]
    bad = bad_records(good[0])
    records: list[KafkaRecord] = []
    for i, record in enumerate(good):  # a bad record after every sixth good one
        records.append(record)
        if i % 6 == 2:
            records.append(bad[i // 6][0])
    where = await produce(kafka_broker, records)
    bad_at = {where[records.index(r)]: reason for r, reason in bad}
    good_at = {where[records.index(r)]: s.segment_id for r, s in zip(good, segments, strict=True)}
    all_ids = {s.segment_id for s in segments}

    port = free_port()
    async with WorkerProcess(worker_env(kafka_broker, topics, group, port, f"wk-{run}"),
                             tmp_path / "worker.log") as worker, \
            TopicWatcher(kafka_broker, topics["transcripts"]) as transcripts, \
            TopicWatcher(kafka_broker, topics["dlq"]) as dlq:
        await worker.start()
        assert worker.proc is not None

        def committed_transcripts() -> int:
            return sum(int(e["transcripts"]) for e in worker.events("batch_committed"))

        # Mid-batch, after a first commit: transcripts are on the topic that no committed
        # batch accounts for.
        await wait_for(lambda: 0 < committed_transcripts() < len(transcripts.records)
                       < len(segments), 180,
                       "transcripts of a batch not yet committed", worker)
        worker.proc.send_signal(signal.SIGKILL)
        await worker.proc.wait()
        seen_at_kill = set(transcripts.transcript_segment_ids())
        offsets_at_kill = await committed(kafka_broker, group, topics["segments"])
        committed_ids = {sid for (p, o), sid in good_at.items() if o < offsets_at_kill.get(p, 0)}
        uncommitted_but_transcribed = seen_at_kill - committed_ids
        assert uncommitted_but_transcribed, "the kill did not land mid-batch"

        await worker.start()  # the same group: it picks up from the last commit
        ends = {p: max(o for (q, o) in where if q == p) + 1 for p, _ in where}
        await wait_for(lambda: set(transcripts.transcript_segment_ids()) >= all_ids
                       and len({(h, v) for h, v in dlq_positions(dlq)}) == len(bad), 240,
                       "every segment transcribed and every bad record dead-lettered", worker)
        deadline = time.monotonic() + 30
        while await committed(kafka_broker, group, topics["segments"]) != ends:
            assert time.monotonic() < deadline, "the restarted worker did not commit everything"
            await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            metrics_text = await resp.text()
        worker.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.proc.wait(), 30)
        assert worker.proc.returncode == 0, worker.log_tail()
        await asyncio.sleep(0.3)  # let the watchers catch up before counting
        ids = transcripts.transcript_segment_ids()
        letters = list(dlq.records)

    # Exactly once after dedupe by transcript id (= ce_id); duplicates only from re-processing.
    by_transcript_id: dict[str, str] = {}
    for headers, value in transcripts.records:
        attrs, data = decode_record(headers, value)
        assert attrs["id"] == data["transcript_id"]
        by_transcript_id[attrs["id"]] = data["segment_id"]
    assert sorted(by_transcript_id.values()) == sorted(all_ids)
    duplicates = Counter(ids)
    duplicated = {sid for sid, n in duplicates.items() if n > 1}
    assert not duplicated & committed_ids, "committed work was done again"
    assert duplicated == uncommitted_but_transcribed  # re-processed: transcribed again, same id
    # Bad records: each on the dead-letter topic with its reason, the worker went on past them.
    reasons = {}
    for headers, _ in letters:
        h = dict(headers)
        reasons[(int(h[DLQ_PARTITION_HEADER]), int(h[DLQ_OFFSET_HEADER]))] = (
            h[DLQ_REASON_HEADER].decode())
    assert reasons == bad_at
    assert "roomwarden_worker_segments_consumed_total" in metrics_text
    batches = worker.events("batch_committed")
    audio_s = sum(float(e["audio_s"]) for e in batches)
    busy_s = sum(float(e["seconds"]) for e in batches)
    print(f"\nworker asr kill test: {len(segments)} segments + {len(bad)} bad records; "
          f"killed with {len(seen_at_kill)} transcripts on the topic, "
          f"{len(uncommitted_but_transcribed)} of them uncommitted; "
          f"{len(ids)} transcripts before dedupe, {len(by_transcript_id)} after "
          f"({len(ids) - len(by_transcript_id)} duplicates, of {len(duplicated)} segments); "
          f"{len(letters)} dead letters ({len(letters) - len(bad)} duplicates); "
          f"{audio_s / busy_s:.1f} audio-s per busy wall-s over the {len(batches)} committed "
          "batches of both runs (test packing: 10 s windows, one at a time)")


async def test_offsets_are_committed_only_after_the_output_is_acked(
    kafka_broker: str,
) -> None:
    """Segments come from the shared broker; transcripts go to a second broker that is not
    there yet. The worker transcribes, waits for the acks -- and commits nothing -- until that
    broker appears; then the acks arrive and the offsets are committed."""
    run = uuid.uuid4().hex[:8]
    segments_topic, group = f"wa-{run}.segments", f"wa-{run}-asr"
    segments = [s for s in await sample_segments(f"wa-{run}") if s.room_id.endswith("-bob")][:3]
    where = await produce(kafka_broker, [segment_record(s, source="/roomwarden/test",
                                                        topic=segments_topic)
                                         for s in segments])
    ends = {p: max(o for q, o in where if q == p) + 1 for p, _ in where}

    output_port = free_port()
    settings = Settings()
    settings.kafka.bootstrap_servers = f"127.0.0.1:{output_port}"
    settings.kafka.transcripts_topic = f"wa-{run}.transcripts"
    metrics = asr_worker_metrics()
    recognizer = await asyncio.to_thread(build_recognizer, settings)
    publisher = build_publisher(settings, metrics.base)
    await publisher.start()  # Kafka for output is down: it buffers
    worker = AsrWorker(
        params=AsrWorkerSettings(group_id=group, segments_topic=segments_topic,
                                 dlq_topic=f"wa-{run}.dlq", session_timeout_ms=SESSION_TIMEOUT_MS,
                                 heartbeat_interval_ms=1000),
        bootstrap_servers=kafka_broker, recognizer=recognizer, sink=publisher, metrics=metrics,
        source="/roomwarden/wa", transcripts_topic=settings.kafka.transcripts_topic)
    stop = asyncio.Event()
    await worker.start()
    running = asyncio.create_task(worker.run(stop))
    registry = metrics.base.registry

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    try:
        deadline = time.monotonic() + 120
        while value("roomwarden_kafka_buffered_records") < len(segments):
            assert time.monotonic() < deadline, "the worker never transcribed the segments"
            assert not running.done(), running
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # ample time for a premature commit to show
        assert value("roomwarden_kafka_connected") == 0
        assert value("roomwarden_worker_commits_total", outcome="committed") == 0
        assert await committed(kafka_broker, group, segments_topic) == {}

        async with LocalBroker(port=output_port) as output:
            deadline = time.monotonic() + 60
            while await committed(kafka_broker, group, segments_topic) != ends:
                assert time.monotonic() < deadline, "offsets not committed after the acks"
                await asyncio.sleep(0.2)
            assert value("roomwarden_kafka_buffered_records") == 0
            out = await read_records(output.bootstrap_servers, settings.kafka.transcripts_topic)
            assert sorted(decode_record(list(r.headers), r.value)[1]["segment_id"]
                          for r in out) == sorted(s.segment_id for s in segments)
            stop.set()
            await asyncio.wait_for(running, 30)
            await worker.stop()
            await publisher.stop()
    finally:
        stop.set()
        if not running.done():
            running.cancel()
        with contextlib.suppress(BaseException):
            await running
        with contextlib.suppress(Exception):
            await worker.stop()
        await publisher.stop(timeout=0)
        recognizer.close()


async def test_a_second_worker_joining_mid_batch_takes_partitions_without_duplicates(
    kafka_broker: str,
) -> None:
    """Rebalance: the first worker finishes, acks and commits its batch in flight before it
    lets partitions go, so the newcomer starts exactly where it stopped."""
    run = uuid.uuid4().hex[:8]
    topics = {"segments": f"wr-{run}.segments", "transcripts": f"wr-{run}.transcripts",
              "dlq": f"wr-{run}.dlq"}
    group = f"wr-{run}-asr"
    await create_topics(kafka_broker, topics.values(), partitions=4)
    segments = await sample_segments(f"wr-{run}")
    where = await produce(kafka_broker, [segment_record(s, source="/roomwarden/test",
                                                        topic=topics["segments"])
                                         for s in segments])
    ends = {p: max(o for q, o in where if q == p) + 1 for p, _ in where}
    settings = Settings()
    settings.kafka.bootstrap_servers = kafka_broker
    recognizer = await asyncio.to_thread(build_recognizer, settings)  # shared: one model
    running: list[tuple[AsrWorker, KafkaPublisher, asyncio.Event, asyncio.Task[None],
                        WorkerMetrics]] = []

    async def start_worker(name: str) -> WorkerMetrics:
        metrics = asr_worker_metrics()
        publisher = build_publisher(settings, metrics.base)
        await publisher.start()
        worker = AsrWorker(
            params=AsrWorkerSettings(group_id=group, segments_topic=topics["segments"],
                                     dlq_topic=topics["dlq"], max_batch=4,
                                     session_timeout_ms=SESSION_TIMEOUT_MS,
                                     heartbeat_interval_ms=1000),
            bootstrap_servers=kafka_broker, recognizer=recognizer, sink=publisher,
            metrics=metrics, source=f"/roomwarden/{name}",
            transcripts_topic=topics["transcripts"])
        await worker.start()
        stop = asyncio.Event()
        running.append((worker, publisher, stop, asyncio.create_task(worker.run(stop)),
                        metrics))
        return metrics

    def commits(metrics: WorkerMetrics, outcome: str) -> float:
        return metrics.base.registry.get_sample_value(
            "roomwarden_worker_commits_total", {"outcome": outcome}) or 0.0

    try:
        async with TopicWatcher(kafka_broker, topics["transcripts"]) as transcripts:
            first = await start_worker("first")
            deadline = time.monotonic() + 120
            while commits(first, "committed") < 1:  # the first is busy: a batch is in flight
                assert time.monotonic() < deadline, "the first worker never committed"
                await asyncio.sleep(0.05)
            second = await start_worker("second")
            deadline = time.monotonic() + 120
            while await committed(kafka_broker, group, topics["segments"]) != ends:
                assert time.monotonic() < deadline, "the group did not commit everything"
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.3)
            ids = transcripts.transcript_segment_ids()
        assert sorted(ids) == sorted(s.segment_id for s in segments)  # no duplicate at all
        assert commits(first, "skipped") == commits(second, "skipped") == 0
        assert running[0][0].assignment and running[1][0].assignment
        assert not running[0][0].assignment & running[1][0].assignment
    finally:
        for worker, publisher, stop, task, _ in running:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)
            await worker.stop()
            await publisher.stop()
        recognizer.close()
