"""Escalations as Kafka records: CloudEvents 1.0, binary content mode, like alerts.

Topic ``roomwarden.escalations.v1``, type ``io.roomwarden.moderation.escalation.v1``, value
valid against ``alerts/schemas/escalation.v1.json``, key and ``partitionkey`` the room id (one
room's escalations stay in order with its alerts' room ordering), ``ce_id`` the deterministic
escalation id (a replay yields the same id), ``ce_time`` the speech time of the triggering alert.
"""

from __future__ import annotations

from typing import Any

from alerts.envelope import KafkaRecord, json_record, rfc3339
from alerts.schemas import ESCALATION, validate
from policy.escalation import Escalation

__all__ = ["ESCALATIONS_TOPIC", "escalation_data", "escalation_record"]

ESCALATIONS_TOPIC = "roomwarden.escalations.v1"


def escalation_data(escalation: Escalation) -> dict[str, Any]:
    """The record value (schema ``escalation.v1.json``); risks rounded to 1e-3."""
    return {
        "escalation_id": escalation.escalation_id,
        "room_id": escalation.room_id,
        "speaker_id": escalation.speaker_id,
        "action": escalation.action,
        "reason": escalation.reason,
        "risk_speaker": round(escalation.risk_speaker, 3),
        "risk_room": round(escalation.risk_room, 3),
        "alert_ids": list(escalation.alert_ids),
        "created_at": rfc3339(escalation.created_at),
    }


def escalation_record(escalation: Escalation, *, source: str,
                      topic: str = ESCALATIONS_TOPIC) -> KafkaRecord:
    """An escalation as a CloudEvents binary-mode Kafka record.

    Args:
        escalation: the decision.
        source: CloudEvents ``source``, e.g. ``/roomwarden/<instance>``.
        topic: destination topic.

    Raises:
        alerts.schemas.EventValidationError: the escalation would not match its schema (checked
            here, so a producer learns at once rather than a consumer later).
    """
    data = escalation_data(escalation)
    validate(ESCALATION.name, data)
    return json_record(ESCALATION, topic=topic, event_id=escalation.escalation_id,
                       source=source, room_id=escalation.room_id, when=escalation.created_at,
                       data=data)
