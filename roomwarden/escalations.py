"""The escalation step of the pipeline: after policy, alerts become a few moderator decisions.

:class:`EscalationStage` feeds each transcript's alerts to a :class:`policy.escalation.Escalator`
(pure: risk, ladder, cooldowns), publishes every resulting escalation as a CloudEvent on
``roomwarden.escalations.v1`` (:mod:`alerts.escalation_record`), and hands host warnings -- and
only those -- to the host-warning channels (the in-room notice of :mod:`alerts.room_notice`, the
host's webhook), so a rant is one warning, not forty.

The pipeline calls :meth:`EscalationStage.handle` with a transcript's alerts right after it
published them, in transcript order: the escalator's decisions rest on speech time, so the same
alerts in the same order give the same escalations and ids on a replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog

from alerts.envelope import KafkaRecord
from alerts.escalation_record import ESCALATIONS_TOPIC, escalation_record
from alerts.webhooks import HostWarning, WebhookDispatcher
from policy.escalation import Escalation, Escalator
from policy.frames import Alert

__all__ = ["EscalationStage", "HostWarningSink", "WebhookWarnings"]

log = structlog.get_logger(__name__)


class _RecordSink(Protocol):
    async def publish(self, record: KafkaRecord) -> Awaitable[object]: ...


class HostWarningSink(Protocol):
    """Something that tells a room's host: the in-room notice
    (:class:`alerts.room_notice.RoomNoticeSink`), the host's webhook. ``warn`` must return at
    once (send in the background) and never raise."""

    def warn(self, escalation: Escalation, alert: Alert) -> None: ...


class WebhookWarnings:
    """Host warnings as Standard Webhooks: each ``host_warning`` goes into the dispatcher's
    persistent outbox (:mod:`alerts.webhooks`), with the escalation id as ``webhook-id`` so a
    replay is delivered once."""

    def __init__(self, dispatcher: WebhookDispatcher) -> None:
        self._dispatcher = dispatcher

    def warn(self, escalation: Escalation, alert: Alert) -> None:
        self._dispatcher.submit(HostWarning(
            webhook_id=escalation.escalation_id, room_id=escalation.room_id,
            alert_id=alert.alert_id, category=alert.category, severity=alert.severity,
            suggestion=alert.suggestion, occurred_at=escalation.created_at))


class EscalationStage:
    """Escalates alerts, publishes the escalations, and warns hosts.

    Args:
        escalator: the decisions (its policy holds every threshold and cooldown).
        sink: record sink (``KafkaPublisher``) for :meth:`handle`; ``None`` keeps escalations
            in-process (or the caller publishes :meth:`record` itself, as the policy worker
            does so that its commit waits for the acks).
        source: CloudEvents ``source`` of the records.
        topic: escalations topic.
        host_warnings: told every ``host_warning`` with the alert that triggered it.
        on_escalation: told every escalation as it is decided (metrics, logs, tests).
    """

    def __init__(self, escalator: Escalator, *, sink: _RecordSink | None, source: str,
                 topic: str = ESCALATIONS_TOPIC, host_warnings: Sequence[HostWarningSink] = (),
                 on_escalation: Callable[[Escalation], None] | None = None) -> None:
        self.escalator = escalator
        self._sink = sink
        self._source = source
        self._topic = topic
        self._host_warnings = tuple(host_warnings)
        self._on_escalation = on_escalation
        self._tasks: set[asyncio.Task[None]] = set()
        self.escalations: list[Escalation] = []
        """Every escalation decided so far, in order."""

    def decide(self, alerts: Sequence[Alert]) -> list[Escalation]:
        """Escalate one transcript's alerts and warn hosts (in the background); publishes
        nothing. Returns the escalations decided, in order."""
        decided = self.escalator.observe(alerts)
        by_id = {a.alert_id: a for a in alerts}
        for escalation in decided:
            self.escalations.append(escalation)
            log.warning("escalation", room_id=escalation.room_id,
                        speaker_id=escalation.speaker_id, action=escalation.action,
                        escalation_id=escalation.escalation_id, reason=escalation.reason)
            if self._on_escalation is not None:
                self._on_escalation(escalation)
            trigger = by_id.get(escalation.alert_ids[-1])
            if escalation.action == "host_warning" and trigger is not None:
                for sink in self._host_warnings:
                    try:
                        sink.warn(escalation, trigger)
                    except Exception:  # a warning channel must never stop the pipeline
                        log.exception("host_warning_failed", escalation_id=escalation.escalation_id)
        return decided

    def record(self, escalation: Escalation) -> KafkaRecord:
        """The escalation as a CloudEvent record for the escalations topic."""
        return escalation_record(escalation, source=self._source, topic=self._topic)

    async def handle(self, alerts: Sequence[Alert]) -> list[Escalation]:
        """:meth:`decide`, then publish each escalation to the sink (waiting for buffer space,
        not for the ack; a failed ack is logged)."""
        decided = self.decide(alerts)
        if self._sink is not None:
            for escalation in decided:
                ack = await self._sink.publish(self.record(escalation))
                self._spawn(self._await_ack(ack, escalation))
        return decided

    async def close(self, timeout_s: float = 5.0) -> None:
        """Wait (up to ``timeout_s``) for acks on their way; cancel the rest."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
            for task in list(self._tasks):
                task.cancel()

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _await_ack(ack: Awaitable[object], escalation: Escalation) -> None:
        try:
            await ack
        except Exception as exc:  # the publisher logs and counts its own failures too
            log.warning("escalation_publish_failed", escalation_id=escalation.escalation_id,
                        error=str(exc))
