"""Distributed mode's intake (``pipeline.asr = kafka``): live segments go to Kafka for
``worker asr`` instead of to a model in this process.

Live sources (WHIP, the Janus tap, WHEP pulls) put segments on :attr:`SegmentHandoff.segments`,
the same :class:`asr.backlog.SegmentBacklog` the local pipeline has, with the same bounds and
the same shedding. Its consumer here is the publisher loop: each segment becomes a segment
record (:func:`alerts.segment_record.segment_record`, key = room id, so one room's segments
stay in order on one partition) handed to the Kafka producer. At most ``in_flight`` records
are handed over and not yet acked; acks take milliseconds, so the backlog stays empty -- until
Kafka is unreachable: then segments wait in the backlog (bounded in seconds of speech, not in
the producer's buffer, which is bounded only in records) and once it is full the oldest are
shed as ``asr_overload`` gaps, exactly as when a local model falls behind.

Every second is accounted for (:class:`HandoffAccounting`): received = handed off (acked on the
segments topic) + shed + failed (+ what is still waiting or unacked while running). Shed and
failed speech is published as a gap, so "no alert" is never read as "nothing said".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import Counter

from alerts.envelope import gap_record
from alerts.segment_record import BadSegment, segment_record
from asr.backlog import SegmentBacklog, unheard_gap
from ingest.frames import SpeechSegment, StreamGap
from roomwarden.metrics import Metrics
from roomwarden.runner import RecordSink

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class HandoffAccounting:
    """Where every second of received speech went. Once drained,
    ``received_s == handed_off_s + shed_s + failed_s`` (each shed or failed second is also a
    published gap); while running, the difference is what waits in the backlog or for an ack."""

    received_s: float = 0.0
    handed_off_s: float = 0.0
    """Acknowledged by Kafka on the segments topic: ``worker asr`` will transcribe it."""
    shed_s: float = 0.0
    """Dropped unheard because Kafka was unreachable long enough for the backlog to fill
    (gap reason ``asr_overload``)."""
    failed_s: float = 0.0
    """Refused for good: the segment cannot be a record, or Kafka rejected it (gap reason
    ``handoff_failed``)."""

    @property
    def pending_s(self) -> float:
        return self.received_s - self.handed_off_s - self.shed_s - self.failed_s


class SegmentHandoff:
    """Publishes the segments put on :attr:`segments` to the segments topic (module docstring).

    Has the intake half of :class:`roomwarden.runner.Pipeline`'s interface (``segments``,
    ``publish_gap``, ``start``, ``drain``, ``stop``), so live sources feed either one.

    Args:
        sink: the Kafka producer (``KafkaPublisher``); ``publish`` returns the ack.
        metrics: where observations go.
        source: CloudEvents ``source`` of the records, e.g. ``/roomwarden/<instance>``.
        segments_topic: where segment records go (``asr_worker.segments_topic``).
        gaps_topic: where gaps go (``kafka.gaps_topic``).
        segment_queue / segment_backlog_s / shed: the backlog's bounds and overload mode
            (``pipeline.*``, as for the local pipeline).
        in_flight: records handed to the producer and not yet acked, at most
            (``pipeline.handoff_in_flight``).
    """

    def __init__(self, *, sink: RecordSink, metrics: Metrics, source: str,
                 segments_topic: str, gaps_topic: str, segment_queue: int = 256,
                 segment_backlog_s: float = 120.0, shed: bool = True,
                 in_flight: int = 32) -> None:
        self.accounting = HandoffAccounting()
        self.segments = SegmentBacklog(max_segments=segment_queue, max_audio_s=segment_backlog_s,
                                       shed=shed, on_shed=self._shed,
                                       on_received=self._received)
        self._sink = sink
        self._metrics = metrics
        self._source = source
        self._segments_topic = segments_topic
        self._gaps_topic = gaps_topic
        self._slots = asyncio.Semaphore(in_flight)
        self._task: asyncio.Task[None] | None = None
        self._acks: set[asyncio.Task[None]] = set()
        self._handed_off = Counter(
            "roomwarden_handoff_seconds_total",
            "Seconds of speech acknowledged on the segments topic (pipeline.asr = kafka).",
            registry=metrics.registry)
        metrics.watch_queue("segments", self.segments.qsize)
        metrics.asr_backlog.set_function(lambda: self.segments.audio_s)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._publish_loop(), name="segment-handoff")

    async def drain(self) -> None:
        """Wait until every segment put so far is acked, shed or failed (gaps acked too)."""
        await self.segments.join()
        while self._acks:
            await asyncio.gather(*list(self._acks), return_exceptions=True)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._acks):
            task.cancel()

    async def publish_gap(self, gap: StreamGap) -> None:
        """Count a stream gap and publish it (``gap_record``) to the gaps topic, as
        :meth:`roomwarden.runner.Pipeline.publish_gap` does."""
        self._metrics.count_gap(gap.reason, gap.duration_s)
        log.warning("stream_gap", room_id=gap.room_id, speaker_id=gap.speaker_id,
                    reason=gap.reason, source=gap.source, gap_id=gap.gap_id,
                    seconds=round(gap.duration_s, 3))
        ack = await self._sink.publish(gap_record(gap, source=self._source,
                                                  topic=self._gaps_topic))
        self._track(self._await_gap_ack(ack, gap))

    def _received(self, segment: SpeechSegment) -> None:
        self.accounting.received_s += segment.duration_s
        self._metrics.asr_received.inc(segment.duration_s)
        self._metrics.segments.inc()
        self._metrics.segment_duration.observe(segment.duration_s)

    def _shed(self, segment: SpeechSegment) -> None:
        self.accounting.shed_s += segment.duration_s
        self._unheard(segment, "asr_overload")

    def _unheard(self, segment: SpeechSegment, reason: str) -> None:
        """Speech that will never reach ASR becomes a gap: published, counted, logged."""
        gap = unheard_gap(segment, reason)
        self._track(self._publish_gap_logged(gap))

    async def _publish_gap_logged(self, gap: StreamGap) -> None:
        try:
            await self.publish_gap(gap)
        except Exception:  # the producer is closed: nothing left to tell Kafka
            log.exception("gap_not_published", gap_id=gap.gap_id, reason=gap.reason)

    async def _publish_loop(self) -> None:
        while True:
            await self._slots.acquire()  # held until Kafka acks (or refuses) the record
            segment = await self.segments.get()
            try:
                record = segment_record(segment, source=self._source, topic=self._segments_topic)
                ack = await self._sink.publish(record)
            except (BadSegment, ValueError) as exc:  # BadSegment is a ValueError: named for why
                self._slots.release()
                self._failed(segment, exc)
            else:
                self._track(self._await_ack(ack, segment))
            finally:
                self.segments.task_done()

    async def _await_ack(self, ack: Awaitable[object], segment: SpeechSegment) -> None:
        try:
            await ack
        except Exception as exc:
            self._failed(segment, exc)
        else:
            self.accounting.handed_off_s += segment.duration_s
            self._handed_off.inc(segment.duration_s)
            self._metrics.published.labels(topic=self._segments_topic).inc()
        finally:
            self._slots.release()

    async def _await_gap_ack(self, ack: Awaitable[object], gap: StreamGap) -> None:
        try:
            await ack
        except Exception:
            log.exception("record_not_delivered", topic=self._gaps_topic, gap_id=gap.gap_id)
            return
        self._metrics.published.labels(topic=self._gaps_topic).inc()

    def _failed(self, segment: SpeechSegment, exc: BaseException) -> None:
        self.accounting.failed_s += segment.duration_s
        self._metrics.stage_errors.labels(stage="handoff").inc()
        log.error("segment_not_handed_off", room_id=segment.room_id,
                  speaker_id=segment.speaker_id, segment_id=segment.segment_id,
                  error=repr(exc))
        self._unheard(segment, "handoff_failed")

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)
