"""The escalation step of the pipeline: after policy, alerts become a few moderator decisions.

:class:`EscalationStage` feeds each transcript's alerts to a :class:`policy.escalation.Escalator`
(pure: risk, ladder, cooldowns), publishes every resulting escalation as a CloudEvent on
``roomwarden.escalations.v1`` (:mod:`alerts.escalation_record`), and posts host warnings -- and
only those -- into the room through the in-room notifier (:mod:`alerts.room_notice`), so a rant
is one notice, not forty.

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
from alerts.room_notice import Notifier
from policy.escalation import Escalation, Escalator
from policy.frames import Alert

__all__ = ["EscalationStage", "host_warning_text"]

log = structlog.get_logger(__name__)


class _RecordSink(Protocol):
    async def publish(self, record: KafkaRecord) -> Awaitable[object]: ...


def host_warning_text(escalation: Escalation) -> str:
    """The in-room notice for a host warning: who, and why (not the words said)."""
    return (f"RoomWarden: {escalation.speaker_id} may have broken the room rules "
            f"({escalation.reason}). Host: please remind them of the rules.")


class EscalationStage:
    """Escalates alerts, publishes the escalations, and warns hosts in their room.

    Args:
        escalator: the decisions (its policy holds every threshold and cooldown).
        sink: record sink (``KafkaPublisher``); ``None`` keeps escalations in-process.
        source: CloudEvents ``source`` of the records.
        topic: escalations topic.
        notifier: posts host warnings into the room (``JanusRoomNotifier``); ``None``: none.
        on_escalation: told every escalation as it is decided (metrics, logs, tests).
    """

    def __init__(self, escalator: Escalator, *, sink: _RecordSink | None, source: str,
                 topic: str = ESCALATIONS_TOPIC, notifier: Notifier | None = None,
                 on_escalation: Callable[[Escalation], None] | None = None) -> None:
        self.escalator = escalator
        self._sink = sink
        self._source = source
        self._topic = topic
        self._notifier = notifier
        self._on_escalation = on_escalation
        self._tasks: set[asyncio.Task[None]] = set()
        self.escalations: list[Escalation] = []
        """Every escalation decided so far, in order."""

    async def handle(self, alerts: Sequence[Alert]) -> list[Escalation]:
        """Escalate one transcript's alerts; publish (waiting for buffer space, not for the
        ack) and notify in the background. Returns the escalations decided."""
        decided = self.escalator.observe(alerts)
        for escalation in decided:
            self.escalations.append(escalation)
            log.warning("escalation", room_id=escalation.room_id,
                        speaker_id=escalation.speaker_id, action=escalation.action,
                        escalation_id=escalation.escalation_id, reason=escalation.reason)
            if self._on_escalation is not None:
                self._on_escalation(escalation)
            if self._sink is not None:
                ack = await self._sink.publish(
                    escalation_record(escalation, source=self._source, topic=self._topic))
                self._spawn(self._await_ack(ack, escalation))
            if escalation.action == "host_warning" and self._notifier is not None:
                self._spawn(self._notify(self._notifier, escalation))
        return decided

    async def close(self, timeout_s: float = 5.0) -> None:
        """Wait (up to ``timeout_s``) for acks and notices on their way; cancel the rest."""
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

    @staticmethod
    async def _notify(notifier: Notifier, escalation: Escalation) -> None:
        try:
            await notifier.notify(escalation.room_id, host_warning_text(escalation))
        except Exception as exc:  # Janus down or refusing: logged, never raised
            log.warning("host_warning_failed", room_id=escalation.room_id,
                        escalation_id=escalation.escalation_id, error=str(exc))
