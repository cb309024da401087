"""Policy as a Kafka consumer-group worker: transcripts in, alerts out, unreadable transcripts to
a dead-letter topic (``roomwarden worker policy``).

The poll -> decode -> process -> ack -> commit loop, rebalances, SIGTERM and ``/metrics`` are
:mod:`roomwarden.worker_loop`'s; this module is what the policy worker does with a poll::

    decode every record (alerts.transcript_decode.decode_transcript; bad -> dead letter)
    -> PolicyEngine.evaluate each transcript, in input order (microseconds each)
    -> publish every alert (alerts.envelope.alert_record, key = room id)
    -> escalate them (roomwarden.escalations: decaying risk, the ladder, cooldowns) and publish
       every escalation on roomwarden.escalations.v1; host warnings go to the room

Alert ids are deterministic (segment id + rule + span start), so the alerts of a re-processed
batch dedupe by ``ce_id``. A transcript the engine raises on is dead-lettered with reason
``policy_failed``. Alert latency (``roomwarden_alert_latency_seconds``) runs from the end of
speech carried by the transcript record to the alert's ack. Host warnings: with the ladder on
(``policy.escalate``, the default) the ladder's ``host_warning`` decisions post the in-room notice;
with it off, each alert is considered for a notice after its ack, as ``serve`` does.

The ladder's state (risk, cooldowns) lives in this process. Transcripts are keyed by room, so a
room's transcripts all reach the same worker in order; a restarted worker starts with fresh risk
(a redelivered batch re-decides its escalations with the same deterministic ids).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from alerts.envelope import alert_record
from alerts.room_notice import RoomNoticeSink
from alerts.transcript_decode import BadTranscript, decode_transcript
from asr.frames import Transcript
from policy.engine import PolicyEngine
from policy.frames import Alert
from roomwarden.escalations import EscalationStage
from roomwarden.runner import RecordSink
from roomwarden.settings import PolicyWorkerSettings
from roomwarden.worker_loop import ConsumerGroupWorker, Outbox, Record, Rejection, WorkerMetrics

log = structlog.get_logger(__name__)


def policy_worker_metrics() -> WorkerMetrics:
    """The policy worker's metrics (``roomwarden_worker_transcripts_*``)."""
    return WorkerMetrics("transcripts")


class PolicyHandler:
    """Decodes transcript records, evaluates them, publishes alerts (module docstring)."""

    def __init__(self, *, policy: PolicyEngine, metrics: WorkerMetrics, source: str,
                 alerts_topic: str, notices: RoomNoticeSink | None = None,
                 escalations: EscalationStage | None = None) -> None:
        self._policy = policy
        self._metrics = metrics
        self._source = source
        self._alerts_topic = alerts_topic
        self._notices = notices
        self._escalations = escalations

    def decode(self, record: Record) -> Transcript | Rejection:
        try:
            return decode_transcript(record.headers, record.value)
        except BadTranscript as exc:
            return Rejection(exc.reason, exc.detail)

    def set_policy(self, policy: PolicyEngine) -> None:
        """Swap the engine (hot reload); batches already being handled finish on the old one."""
        self._policy = policy

    async def handle(self, batch: list[tuple[Record, Transcript]],
                     out: Outbox) -> Mapping[str, Any]:
        m = self._metrics.base
        policy = self._policy  # one pack per batch, even if a reload lands mid-batch
        alerts_total = escalations_total = 0
        for record, transcript in batch:
            m.transcripts.labels(confidence_class=transcript.confidence_class).inc()
            try:
                alerts = policy.evaluate(transcript)
            except Exception as exc:
                m.stage_errors.labels(stage="policy").inc()
                log.exception("policy_failed", transcript_id=transcript.transcript_id,
                              room_id=transcript.room_id)
                await out.dead_letter(record, "policy_failed", repr(exc))
                continue
            for alert in alerts:
                alerts_total += 1
                m.alerts.labels(category=alert.category).inc()
                log.warning("alert", room_id=alert.room_id, speaker_id=alert.speaker_id,
                            category=alert.category, rule_id=alert.rule_id,
                            alert_id=alert.alert_id)
                await out.publish(alert_record(alert, source=self._source,
                                               topic=self._alerts_topic),
                                  on_ack=self._acked(alert))
            if alerts and self._escalations is not None:
                for escalation in self._escalations.decide(alerts):
                    escalations_total += 1
                    m.escalations.labels(action=escalation.action).inc()
                    await out.publish(self._escalations.record(escalation))
        return {"transcripts": len(batch), "alerts": alerts_total,
                "escalations": escalations_total}

    def _acked(self, alert: Alert) -> Callable[[], None]:
        def on_ack() -> None:
            latency = time.monotonic() - alert.transcript.segment.end_monotonic
            self._metrics.base.alert_latency.observe(latency)
            if self._notices is not None:
                self._notices.submit(alert)  # never blocks (sent in the background)

        return on_ack


class PolicyWorker(ConsumerGroupWorker[Transcript]):
    """Consumes transcript records in a group, evaluates them, publishes alerts, commits.

    Args:
        params: group, dead-letter topic, batching, timeouts (``settings.policy_worker``).
        bootstrap_servers: Kafka to consume from.
        transcripts_topic: the input topic (``kafka.transcripts_topic``).
        alerts_topic: the output topic (``kafka.alerts_topic``).
        policy: the rule pack's engine.
        sink: where alerts and dead letters go (``KafkaPublisher``).
        metrics: where observations go (:func:`policy_worker_metrics`).
        source: CloudEvents ``source`` of the alerts, e.g. ``/roomwarden/<instance>``.
        notices: in-room notices per alert, submitted once it is acked (when there is no
            escalation ladder; with one, notices are its ``host_warnings``).
        escalations: the escalation ladder; its escalations are published through the batch's
            outbox (acked before the commit).
        client_id: Kafka client id of the consumer.
    """

    def __init__(self, *, params: PolicyWorkerSettings, bootstrap_servers: str,
                 transcripts_topic: str, alerts_topic: str, policy: PolicyEngine,
                 sink: RecordSink, metrics: WorkerMetrics, source: str,
                 notices: RoomNoticeSink | None = None,
                 escalations: EscalationStage | None = None,
                 client_id: str = "roomwarden-policy") -> None:
        handler = PolicyHandler(policy=policy, metrics=metrics, source=source,
                                alerts_topic=alerts_topic, notices=notices,
                                escalations=escalations)
        super().__init__(params=params, topic=transcripts_topic,
                         bootstrap_servers=bootstrap_servers, handler=handler, sink=sink,
                         metrics=metrics, source=source, client_id=client_id, name="policy")
        self.set_policy = handler.set_policy
        """Swap the rule pack's engine while running (``roomwarden.policy_reload``)."""
