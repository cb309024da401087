"""ASR as a Kafka consumer-group worker: segments in, transcripts out, bad input to a dead-letter
topic (``roomwarden worker asr``).

The poll -> decode -> process -> ack -> commit loop, rebalances, SIGTERM and ``/metrics`` are
:mod:`roomwarden.worker_loop`'s; this module is what the ASR worker does with a poll::

    decode every record (alerts.segment_record.decode_segment; bad -> dead letter, with reason)
    -> transcribe the good ones concurrently (the recognizer packs concurrent calls into one
       decode batch)
    -> publish each transcript, in input order, as soon as it and the ones before it are ready

A segment the recognizer fails on goes to the dead-letter topic (reason ``asr_failed``)
instead of blocking its partition forever. Transcript ids are deterministic (segment id +
model id), so the duplicates a re-processed batch produces are dropped by consumers that
dedupe by ``ce_id``. Each transcript record carries the segment's end of speech
(``roomwarden-speech-ended-at`` header), so ``worker policy`` measures alert latency from the
moment the speaker stopped, across both hops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import structlog

from alerts.envelope import transcript_record
from alerts.segment_record import BadSegment, decode_segment
from alerts.transcript_decode import with_speech_ended_at
from asr.recognizer import SpeechRecognizer
from ingest.frames import SpeechSegment
from roomwarden.runner import RecordSink
from roomwarden.settings import AsrWorkerSettings
from roomwarden.worker_loop import ConsumerGroupWorker, Outbox, Record, Rejection, WorkerMetrics

log = structlog.get_logger(__name__)


def asr_worker_metrics() -> WorkerMetrics:
    """The ASR worker's metrics (``roomwarden_worker_segments_*``)."""
    return WorkerMetrics("segments")


class AsrHandler:
    """Decodes segment records, transcribes them, publishes transcripts (module docstring)."""

    def __init__(self, *, recognizer: SpeechRecognizer, metrics: WorkerMetrics, source: str,
                 transcripts_topic: str) -> None:
        self._recognizer = recognizer
        self._metrics = metrics
        self._source = source
        self._transcripts_topic = transcripts_topic

    def decode(self, record: Record) -> SpeechSegment | Rejection:
        try:
            return decode_segment(record.headers, record.value)
        except BadSegment as exc:
            return Rejection(exc.reason, exc.detail)

    async def handle(self, batch: list[tuple[Record, SpeechSegment]],
                     out: Outbox) -> Mapping[str, Any]:
        m = self._metrics.base
        # All at once: a batching recognizer packs concurrent calls into one decode.
        tasks = [asyncio.create_task(self._recognizer.transcribe(seg)) for _, seg in batch]
        audio_s = 0.0
        transcripts = 0
        try:
            for (record, segment), task in zip(batch, tasks, strict=True):
                try:
                    transcript = await task
                except Exception as exc:
                    m.stage_errors.labels(stage="asr").inc()
                    log.exception("asr_failed", segment_id=segment.segment_id,
                                  room_id=segment.room_id, speaker_id=segment.speaker_id)
                    await out.dead_letter(record, "asr_failed", repr(exc))
                    continue
                audio_s += segment.duration_s
                transcripts += 1
                m.segment_duration.observe(segment.duration_s)
                m.asr_audio.inc(segment.duration_s)
                m.asr_decode.observe(transcript.asr_seconds)
                m.asr_queue_wait.observe(transcript.queued_seconds)
                m.transcripts.labels(confidence_class=transcript.confidence_class).inc()
                speech_ended_at = time.time() - (time.monotonic() - segment.end_monotonic)
                await out.publish(with_speech_ended_at(transcript_record(
                    transcript, source=self._source, topic=self._transcripts_topic),
                    speech_ended_at))
        finally:
            for task in tasks:
                task.cancel()
        return {"transcripts": transcripts, "audio_s": round(audio_s, 3)}


class AsrWorker(ConsumerGroupWorker[SpeechSegment]):
    """Consumes segment records in a group, transcribes, publishes, commits.

    Args:
        params: group, topics, batching, timeouts (``settings.asr_worker``).
        bootstrap_servers: Kafka to consume from.
        recognizer: speech to text.
        sink: where transcripts and dead letters go (``KafkaPublisher``); ``publish`` returns
            an ack awaitable.
        metrics: where observations go (:func:`asr_worker_metrics`).
        source: CloudEvents ``source`` of the transcripts, e.g. ``/roomwarden/<instance>``.
        transcripts_topic: topic of the transcripts.
        client_id: Kafka client id of the consumer.
    """

    def __init__(self, *, params: AsrWorkerSettings, bootstrap_servers: str,
                 recognizer: SpeechRecognizer, sink: RecordSink, metrics: WorkerMetrics,
                 source: str, transcripts_topic: str, client_id: str = "roomwarden-asr") -> None:
        handler = AsrHandler(recognizer=recognizer, metrics=metrics, source=source,
                             transcripts_topic=transcripts_topic)
        super().__init__(params=params, topic=params.segments_topic,
                         bootstrap_servers=bootstrap_servers, handler=handler, sink=sink,
                         metrics=metrics, source=source, client_id=client_id, name="asr")
