"""ASR as a Kafka consumer-group worker: segments in, transcripts out, bad input to a dead-letter
topic (``roomwarden worker asr``).

One poll is one batch, processed to the end before the next poll::

    getmany(max_records=N) -> decode every record      (bad -> dead-letter record, with reason)
                           -> transcribe the good ones concurrently (the recognizer may pack
                              concurrent calls into one decode batch)
                           -> publish each transcript, in input order, as soon as it and the
                              ones before it are ready
                           -> await every ack (transcripts and dead letters)
                           -> commit exactly this poll's offsets (per partition: last + 1)

Offsets are committed only after Kafka acknowledged everything the batch produced, so a worker
that dies anywhere in between leaves its batch uncommitted and the group re-delivers it:
at-least-once. Transcript ids are deterministic (segment id + model id), so the duplicates a
re-processed batch produces are dropped by consumers that dedupe by ``ce_id``.

Rebalances: when partitions are revoked, the listener waits (up to ``revoke_wait_s``) for the
batch in flight to be acked and committed, so a clean rebalance re-processes nothing. If the
wait runs out, or the commit loses a race with the rebalance anyway (``CommitFailedError``, a
partition no longer assigned), the commit is skipped and logged: the batch is re-processed by
whoever owns the partition next -- duplicates, never loss.

A transcript or dead letter that Kafka refuses for good (a non-retriable error) stops the
worker with an error and nothing committed, so the batch is retried after a restart rather
than skipped. A segment the recognizer fails on goes to the dead-letter topic (reason
``asr_failed``) instead of blocking its partition forever.

Tansu (the embedded broker) runs consumer groups and offset commits correctly with aiokafka,
with two slow spots measured here: joining a group takes about half a session timeout, and a
member that leaves -- cleanly or killed -- is only dropped when its session times out, so a
restarted worker waits roughly ``session_timeout_ms`` * 1.5 before it gets partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerts.envelope import KafkaRecord, transcript_record
from alerts.segment_record import (
    SEGMENTS_DLQ_TOPIC,
    SEGMENTS_TOPIC,
    BadSegment,
    dead_letter_record,
    decode_segment,
)
from asr.recognizer import SpeechRecognizer
from ingest.frames import SpeechSegment
from roomwarden.metrics import Metrics
from roomwarden.runner import RecordSink

log = structlog.get_logger(__name__)

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
BATCH_SECONDS_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)


class AsrWorkerSettings(BaseModel):
    """The ASR worker (``ROOMWARDEN_ASR_WORKER__*``). Kafka address, transcripts topic, model and
    instance name come from the main settings (``kafka.*``, ``asr.*``, ``instance``)."""

    group_id: str = "roomwarden-asr"
    """Consumer group: every worker of the group shares the segments topic's partitions."""
    segments_topic: str = SEGMENTS_TOPIC
    """Topic of segment records (``alerts.segment_record``) to transcribe."""
    dlq_topic: str = SEGMENTS_DLQ_TOPIC
    """Dead-letter topic: rejected records, unchanged, with ``roomwarden-dlq-*`` headers."""
    max_batch: int = Field(default=16, ge=1)
    """Records per poll, transcribed concurrently and committed together. The recognizer packs
    concurrent segments into shared windows, so larger polls go faster (sample room, tiny.en,
    2 cores: 2.8 / 6.2 / 10.3 / 11.5 audio-s per wall-s at 1 / 8 / 16 / 32); a crash
    re-processes at most one poll. 16 matches ``pipeline.asr_in_flight``."""
    poll_timeout_ms: int = Field(default=500, gt=0)
    """How long one poll waits for records; also how late SIGTERM is noticed when idle."""
    session_timeout_ms: int = Field(default=10_000, gt=0)
    """A worker silent this long is dropped from the group and its partitions reassigned."""
    heartbeat_interval_ms: int = Field(default=3_000, gt=0)
    """Heartbeats to the group coordinator (a third of the session timeout, by habit)."""
    max_poll_interval_ms: int = Field(default=300_000, gt=0)
    """A batch taking longer than this (Kafka down for output) makes the worker leave the
    group; its batch is then re-processed by another member."""
    revoke_wait_s: float = Field(default=30.0, ge=0)
    """On a rebalance, how long to wait for the batch in flight to be acked and committed
    before letting the partitions go (it is re-processed elsewhere if this runs out)."""
    metrics_host: str = "0.0.0.0"
    """Address of the worker's own ``/metrics`` and ``/healthz``."""
    metrics_port: int = Field(default=9464, ge=0)
    """Port of ``/metrics`` and ``/healthz`` (0 = any free port, logged)."""


class _WorkerEnv(BaseSettings):
    """Reads :class:`AsrWorkerSettings` from ``ROOMWARDEN_ASR_WORKER__*`` on its own, so the
    worker needs no field in :class:`roomwarden.settings.Settings`."""

    model_config = SettingsConfigDict(env_prefix="ROOMWARDEN_", env_nested_delimiter="__",
                                      extra="ignore")
    asr_worker: AsrWorkerSettings = AsrWorkerSettings()


def load_worker_settings() -> AsrWorkerSettings:
    """:class:`AsrWorkerSettings` from the environment (raises pydantic's ValidationError)."""
    return _WorkerEnv().asr_worker


class WorkerMetrics:
    """The shared :class:`Metrics` (ASR, transcripts, Kafka) plus the worker's own."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.base = metrics or Metrics()
        r = self.base.registry
        self.consumed = Counter("roomwarden_worker_segments_consumed_total",
                                "Segment records read from Kafka (good or bad).", registry=r)
        self.dead_lettered = Counter(
            "roomwarden_worker_segments_dead_lettered_total",
            "Records sent to the dead-letter topic, by reason.", ["reason"], registry=r)
        self.batch_size = Histogram("roomwarden_worker_batch_size", "Records per poll.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram(
            "roomwarden_worker_batch_seconds", "Poll to commit of one batch.",
            buckets=BATCH_SECONDS_BUCKETS, registry=r)
        self.commits = Counter(
            "roomwarden_worker_commits_total",
            "Batch commits, by outcome (committed; skipped: lost to a rebalance, re-processed).",
            ["outcome"], registry=r)
        self.lag = Gauge("roomwarden_worker_consumer_lag",
                         "Records behind the partitions' high watermarks (assigned ones).",
                         registry=r)


class DeliveryError(RuntimeError):
    """Kafka refused a transcript or dead letter for good: the batch was not committed."""


class AsrWorker:
    """Consumes segment records in a group, transcribes, publishes, commits (module docstring).

    Args:
        params: group, topics, batching, timeouts.
        bootstrap_servers: Kafka to consume from.
        recognizer: speech to text.
        sink: where transcripts and dead letters go (``KafkaPublisher``); ``publish`` returns
            an ack awaitable.
        metrics: where observations go.
        source: CloudEvents ``source`` of the transcripts, e.g. ``/roomwarden/<instance>``.
        transcripts_topic: topic of the transcripts.
        client_id: Kafka client id of the consumer.
    """

    def __init__(self, *, params: AsrWorkerSettings, bootstrap_servers: str,
                 recognizer: SpeechRecognizer, sink: RecordSink, metrics: WorkerMetrics,
                 source: str, transcripts_topic: str, client_id: str = "roomwarden-asr") -> None:
        self._params = params
        self._recognizer = recognizer
        self._sink = sink
        self._metrics = metrics
        self._source = source
        self._transcripts_topic = transcripts_topic
        self._idle = asyncio.Event()
        self._idle.set()
        self._next: dict[TopicPartition, int] = {}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, client_id=client_id, group_id=params.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=params.session_timeout_ms,
            heartbeat_interval_ms=params.heartbeat_interval_ms,
            max_poll_interval_ms=params.max_poll_interval_ms,
            rebalance_timeout_ms=max(params.session_timeout_ms,
                                     int(params.revoke_wait_s * 1000)))
        metrics.lag.set_function(self._lag)

    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    async def start(self) -> None:
        """Connect and subscribe; partitions arrive with the first polls."""
        await self._consumer.start()
        self._consumer.subscribe([self._params.segments_topic], listener=_Listener(self))
        log.info("asr_worker_started", group_id=self._params.group_id,
                 topic=self._params.segments_topic, dlq_topic=self._params.dlq_topic,
                 transcripts_topic=self._transcripts_topic, max_batch=self._params.max_batch)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and process batches until ``stop`` is set; the batch in flight always finishes
        (acked and committed) before this returns."""
        p = self._params
        while not stop.is_set():
            batch = await self._consumer.getmany(timeout_ms=p.poll_timeout_ms,
                                                 max_records=p.max_batch)
            records = [r for tp in sorted(batch, key=lambda t: t.partition) for r in batch[tp]]
            if not records:
                continue
            self._idle.clear()
            try:
                await self._process(records)
            finally:
                self._idle.set()

    async def stop(self) -> None:
        """Leave the group and close the consumer (nothing is committed here)."""
        await self._consumer.stop()

    async def _process(self, records: list[ConsumerRecord[Any, Any]]) -> None:
        started = time.monotonic()
        m = self._metrics
        m.consumed.inc(len(records))
        m.batch_size.observe(len(records))
        acks: list[Awaitable[object]] = []
        good: list[tuple[ConsumerRecord[Any, Any], SpeechSegment]] = []
        for record in records:
            try:
                good.append((record, decode_segment(record.headers, record.value)))
            except BadSegment as exc:
                acks.append(await self._dead_letter(record, exc.reason, exc.detail))
        # All at once: a batching recognizer packs concurrent calls into one decode.
        tasks = [asyncio.create_task(self._recognizer.transcribe(seg)) for _, seg in good]
        audio_s = 0.0
        transcripts = 0
        try:
            for (record, segment), task in zip(good, tasks, strict=True):
                try:
                    transcript = await task
                except Exception as exc:
                    m.base.stage_errors.labels(stage="asr").inc()
                    log.exception("asr_failed", segment_id=segment.segment_id,
                                  room_id=segment.room_id, speaker_id=segment.speaker_id)
                    acks.append(await self._dead_letter(record, "asr_failed", repr(exc)))
                    continue
                audio_s += segment.duration_s
                transcripts += 1
                m.base.segment_duration.observe(segment.duration_s)
                m.base.asr_audio.inc(segment.duration_s)
                m.base.asr_decode.observe(transcript.asr_seconds)
                m.base.asr_queue_wait.observe(transcript.queued_seconds)
                m.base.transcripts.labels(confidence_class=transcript.confidence_class).inc()
                acks.append(await self._publish(transcript_record(
                    transcript, source=self._source, topic=self._transcripts_topic)))
        finally:
            for task in tasks:
                task.cancel()
        results = await asyncio.gather(*acks, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise DeliveryError(f"{len(failed)} of {len(results)} record(s) of a batch were not "
                                f"delivered ({failed[0]!r}); nothing committed, the batch will "
                                "be re-processed")
        committed = await self._commit(records)
        seconds = time.monotonic() - started
        m.batch_seconds.observe(seconds)
        log.info("batch_committed" if committed else "batch_not_committed",
                 records=len(records), transcripts=transcripts,
                 dead_letters=len(records) - transcripts, audio_s=round(audio_s, 3),
                 seconds=round(seconds, 3),
                 last_offsets={f"{r.partition}": r.offset for r in records})

    async def _commit(self, records: list[ConsumerRecord[Any, Any]]) -> bool:
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, -1), r.offset + 1)
        self._next.update(offsets)
        try:
            await self._consumer.commit({tp: OffsetAndMetadata(o, "")
                                         for tp, o in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved to another member meanwhile: it re-processes the batch.
            self._metrics.commits.labels(outcome="skipped").inc()
            log.warning("commit_skipped_rebalanced", error=repr(exc),
                        offsets={f"{tp.partition}": o for tp, o in offsets.items()})
            return False
        self._metrics.commits.labels(outcome="committed").inc()
        return True

    async def _publish(self, record: KafkaRecord) -> Awaitable[object]:
        ack = await self._sink.publish(record)
        topic = record.topic
        published = self._metrics.base.published

        async def counted() -> object:
            result = await ack
            published.labels(topic=topic).inc()
            return result

        return asyncio.ensure_future(counted())

    async def _dead_letter(self, record: ConsumerRecord[Any, Any], reason: str,
                           detail: str) -> Awaitable[object]:
        self._metrics.dead_lettered.labels(reason=reason).inc()
        log.warning("segment_dead_lettered", reason=reason, detail=detail, topic=record.topic,
                    partition=record.partition, offset=record.offset,
                    key=(record.key or b"").decode("utf-8", "replace"))
        letter = dead_letter_record(
            topic=self._params.dlq_topic, key=record.key, headers=record.headers,
            value=record.value, reason=reason, detail=detail, source_topic=record.topic,
            source_partition=record.partition, source_offset=record.offset,
            worker=self._source)
        try:
            return await self._publish(letter)
        except ValueError:
            # Our headers pushed a record near the size limit over it: keep the evidence that
            # it existed (headers, where it was read) and drop the value.
            letter = KafkaRecord(letter.topic, letter.key,
                                 [*letter.headers, ("roomwarden-dlq-value-dropped", b"1")], b"")
            return await self._publish(letter)

    def _lag(self) -> float:
        lag = 0
        for tp in self._consumer.assignment():
            high, position = self._consumer.highwater(tp), self._next.get(tp)
            if high is not None and position is not None:
                lag += max(0, high - position)
        return float(lag)

    async def wait_idle(self, timeout: float) -> bool:  # noqa: ASYNC109 - a bounded wait
        """Wait until no batch is in flight; False if ``timeout`` seconds ran out first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        return False


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: AsrWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        if not await self._worker.wait_idle(self._worker._params.revoke_wait_s):
            log.warning("revoke_without_commit", partitions=sorted(tp.partition for tp in revoked),
                        reason="batch still in flight; it will be re-processed")
        log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))
