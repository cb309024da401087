"""The pipeline: segments -> ASR -> policy -> Kafka, joined by bounded queues.

One task per stage. Queues are bounded, so a slow stage pushes back on the one before it instead
of letting memory grow. Metrics are observed here, where items cross from one stage to the
next, so the stages themselves stay free of Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from alerts.envelope import KafkaRecord, alert_record, gap_record, transcript_record
from alerts.evidence_record import BadEvidence, evidence_record
from asr.backlog import SegmentBacklog, unheard_gap
from asr.frames import Transcript
from asr.recognizer import SpeechRecognizer
from ingest.frames import SpeechSegment, StreamGap
from policy.engine import PolicyEngine
from policy.frames import Alert
from roomwarden.escalations import EscalationStage
from roomwarden.metrics import Metrics

log = structlog.get_logger(__name__)


class RecordSink(Protocol):
    """Where records go. ``KafkaPublisher`` is the real one; ``publish`` returns the ack."""

    async def publish(self, record: KafkaRecord) -> Awaitable[object]: ...


AlertCallback = Callable[[Alert, float | None], None]
"""Called once an alert is delivered, with end-of-speech -> ack latency (None without Kafka)."""


@dataclass(slots=True)
class AsrAccounting:
    """Where every second of received speech went. Once the pipeline is drained,
    ``received_s == transcribed_s + shed_s + failed_s`` (each shed or failed second is also a
    published gap); while running, the difference is what is waiting or being decoded."""

    received_s: float = 0.0
    transcribed_s: float = 0.0
    shed_s: float = 0.0
    """Dropped unheard because ASR was behind (gap reason ``asr_overload``)."""
    failed_s: float = 0.0
    """The recognizer raised on it (gap reason ``asr_failed``)."""

    @property
    def pending_s(self) -> float:
        return self.received_s - self.transcribed_s - self.shed_s - self.failed_s


@dataclass(frozen=True, slots=True)
class Topics:
    alerts: str = "roomwarden.alerts.v1"
    transcripts: str = "roomwarden.transcripts.v1"
    gaps: str = "roomwarden.gaps.v1"
    evidence: str | None = "roomwarden.evidence.v1"
    """The audio of each segment that raised alerts, for the audit log; ``None``: not sent."""


class Pipeline:
    """Runs ASR and policy over the segments put on :attr:`segments`, publishing to a sink.

    Args:
        recognizer: speech to text.
        policy: rule evaluation. Swappable at run time (:meth:`set_policy`).
        sink: the record sink (Kafka). ``None`` keeps alerts in-process (``moderate`` w/o Kafka).
        metrics: where observations go.
        source: CloudEvents ``source`` attribute of every record.
        topics: topic names.
        segment_queue / transcript_queue: queue bounds (segments / transcripts waiting).
        segment_backlog_s: bound on seconds of speech waiting for ASR.
        shed: live mode: when ASR is behind, shed the oldest waiting speech (as gaps) rather
            than block ingest (:mod:`asr.backlog`). False for offline jobs: ingest waits.
        asr_in_flight: segments handed to the recognizer at once. The recognizer packs what it
            holds into shared windows, so this must cover about two windows' worth; the rest
            waits in the backlog, where shedding applies.
        on_alert: called for each alert once delivered.
        on_transcript: called for each transcript after policy ran (progress reporting).
        escalations: the escalation ladder (:mod:`roomwarden.escalations`), told each
            transcript's alerts after they are sent; ``None``: no escalations.
    """

    def __init__(
        self,
        *,
        recognizer: SpeechRecognizer,
        policy: PolicyEngine,
        sink: RecordSink | None,
        metrics: Metrics,
        source: str,
        topics: Topics = Topics(),
        segment_queue: int = 256,
        transcript_queue: int = 256,
        segment_backlog_s: float = 120.0,
        shed: bool = True,
        asr_in_flight: int = 16,
        on_alert: AlertCallback | None = None,
        on_transcript: Callable[[Transcript], None] | None = None,
        escalations: EscalationStage | None = None,
    ) -> None:
        self.accounting = AsrAccounting()
        self.segments: SegmentBacklog = SegmentBacklog(
            max_segments=segment_queue, max_audio_s=segment_backlog_s, shed=shed,
            on_shed=self._shed, on_received=self._received)
        self._asr_in_flight = asr_in_flight
        self._transcripts: asyncio.Queue[Transcript] = asyncio.Queue(transcript_queue)
        self._recognizer = recognizer
        self._policy = policy
        self._sink = sink
        self._metrics = metrics
        self._source = source
        self._topics = topics
        self._on_alert = on_alert
        self._on_transcript = on_transcript
        self._escalations = escalations
        self._tasks: list[asyncio.Task[None]] = []
        self._acks: set[asyncio.Task[None]] = set()
        self._decodes: set[asyncio.Task[None]] = set()
        self.alerts: list[Alert] = []
        """Every alert raised so far (delivered or not), in order."""
        metrics.watch_queue("segments", self.segments.qsize)
        metrics.watch_queue("transcripts", self._transcripts.qsize)
        metrics.asr_backlog.set_function(lambda: self.segments.audio_s)

    def set_policy(self, policy: PolicyEngine) -> None:
        self._policy = policy

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._asr_loop(), name="asr"),
            asyncio.create_task(self._policy_loop(), name="policy"),
        ]

    async def drain(self) -> None:
        """Wait until everything queued so far has been transcribed, judged and acked."""
        await self.segments.join()
        await self._transcripts.join()
        while self._acks:
            await asyncio.gather(*list(self._acks), return_exceptions=True)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in list(self._acks) + list(self._decodes):
            task.cancel()
        if self._escalations is not None:
            await self._escalations.close()

    async def publish_gap(self, gap: StreamGap) -> None:
        """Count a stream gap and publish it (``gap_record``) to the gaps topic.

        Gaps bypass the ASR/policy queues: they carry no speech, and must not wait behind it.
        """
        self._metrics.count_gap(gap.reason, gap.duration_s)
        log.warning("stream_gap", room_id=gap.room_id, speaker_id=gap.speaker_id,
                    reason=gap.reason, source=gap.source, gap_id=gap.gap_id,
                    seconds=round(gap.duration_s, 3))
        await self._send(gap_record(gap, source=self._source, topic=self._topics.gaps), None)

    def _received(self, segment: SpeechSegment) -> None:
        self.accounting.received_s += segment.duration_s
        self._metrics.asr_received.inc(segment.duration_s)

    def _shed(self, segment: SpeechSegment) -> None:
        self.accounting.shed_s += segment.duration_s
        self._unheard(segment, "asr_overload")

    def _unheard(self, segment: SpeechSegment, reason: str) -> None:
        """Speech that will never be transcribed becomes a gap: published, counted, logged."""
        gap = unheard_gap(segment, reason)
        task = asyncio.create_task(self.publish_gap(gap))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def _asr_loop(self) -> None:
        # Up to ``asr_in_flight`` segments are with the recognizer at once, so it can pack
        # several speakers into one window; the rest wait in the backlog.
        slots = asyncio.Semaphore(self._asr_in_flight)
        while True:
            await slots.acquire()
            segment = await self.segments.get()
            task = asyncio.create_task(self._transcribe(segment, slots))
            self._decodes.add(task)
            task.add_done_callback(self._decodes.discard)

    async def _transcribe(self, segment: SpeechSegment, slots: asyncio.Semaphore) -> None:
        released = False
        try:
            self._metrics.segments.inc()
            self._metrics.segment_duration.observe(segment.duration_s)
            transcript = await self._recognizer.transcribe(segment)
            self.accounting.transcribed_s += segment.duration_s
            self._metrics.asr_audio.inc(segment.duration_s)
            self._metrics.asr_decode.observe(transcript.asr_seconds)
            self._metrics.asr_queue_wait.observe(transcript.queued_seconds)
            self._metrics.asr_batch.observe(transcript.batch_size)
            # The recognizer is done with it: free the slot before waiting on policy.
            slots.release()
            released = True
            await self._transcripts.put(transcript)
        except Exception:
            self.accounting.failed_s += segment.duration_s
            self._metrics.stage_errors.labels(stage="asr").inc()
            log.exception("asr_failed", room_id=segment.room_id, speaker_id=segment.speaker_id,
                          segment_id=segment.segment_id)
            self._unheard(segment, "asr_failed")
        finally:
            if not released:
                slots.release()
            self.segments.task_done()

    async def _policy_loop(self) -> None:
        while True:
            transcript = await self._transcripts.get()
            try:
                await self._judge(transcript)
            except Exception:
                self._metrics.stage_errors.labels(stage="policy").inc()
                log.exception("policy_failed", transcript_id=transcript.transcript_id)
            finally:
                self._transcripts.task_done()

    async def _judge(self, transcript: Transcript) -> None:
        self._metrics.transcripts.labels(confidence_class=transcript.confidence_class).inc()
        alerts = self._policy.evaluate(transcript)
        if self._on_transcript is not None:
            self._on_transcript(transcript)
        if transcript.text:
            log.debug("transcript", room_id=transcript.room_id, speaker_id=transcript.speaker_id,
                     text=transcript.text, confidence_class=transcript.confidence_class)
        await self._send(transcript_record(transcript, source=self._source,
                                           topic=self._topics.transcripts), None)
        for alert in alerts:
            self.alerts.append(alert)
            self._metrics.alerts.labels(category=alert.category).inc()
            log.warning("alert", room_id=alert.room_id, speaker_id=alert.speaker_id,
                        category=alert.category, rule_id=alert.rule_id, alert_id=alert.alert_id)
            await self._send(alert_record(alert, source=self._source, topic=self._topics.alerts),
                             alert)
        if alerts and self._topics.evidence:
            await self._send_evidence(transcript, alerts, self._topics.evidence)
        if alerts and self._escalations is not None:
            for escalation in await self._escalations.handle(alerts):
                self._metrics.escalations.labels(action=escalation.action).inc()

    async def _send_evidence(self, transcript: Transcript, alerts: list[Alert],
                             topic: str) -> None:
        """The flagged speech itself, for the audit log (``roomwarden worker audit``)."""
        try:
            record = evidence_record(transcript.segment, alert_ids=[a.alert_id for a in alerts],
                                     source=self._source, topic=topic)
        except BadEvidence as exc:  # no audio, or a clip over Kafka's 1 MB message
            log.warning("evidence_not_kept", segment_id=transcript.segment.segment_id,
                        reason=exc.reason, detail=exc.detail)
            return
        await self._send(record, None)

    async def _send(self, record: KafkaRecord, alert: Alert | None) -> None:
        if self._sink is None:
            if alert is not None and self._on_alert is not None:
                self._on_alert(alert, None)
            return
        # publish() may wait for buffer space (back-pressure); the ack is awaited off this loop
        # so one slow ack never holds back judging the next transcript.
        ack = await self._sink.publish(record)
        task = asyncio.create_task(self._await_ack(ack, record, alert))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def _await_ack(self, ack: Awaitable[object], record: KafkaRecord,
                         alert: Alert | None) -> None:
        try:
            await ack
        except Exception:
            log.exception("record_not_delivered", topic=record.topic)
            return
        self._metrics.published.labels(topic=record.topic).inc()
        if alert is None:
            return
        latency = time.monotonic() - alert.transcript.segment.end_monotonic
        self._metrics.alert_latency.observe(latency)
        if self._on_alert is not None:
            self._on_alert(alert, latency)
