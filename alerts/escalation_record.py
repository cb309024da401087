"""Escalations as Kafka records: CloudEvents 1.0, binary content mode, like alerts.

Topic ``roomwarden.escalations.v1``, type ``io.roomwarden.moderation.escalation.v1``, value
valid against ``alerts/schemas/escalation.v1.json``, key and ``partitionkey`` the room id (one
room's escalations stay in order with its alerts' room ordering), ``ce_id`` the deterministic
escalation id (a replay yields the same id), ``ce_time`` the speech time of the triggering alert.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from alerts.envelope import CONTENT_TYPE, KafkaRecord, rfc3339
from alerts.schemas import ESCALATION, validate
from policy.escalation import Escalation

__all__ = ["ESCALATIONS_TOPIC", "escalation_data", "escalation_record"]

ESCALATIONS_TOPIC = "roomwarden.escalations.v1"
_FORMAT = JSONFormat()


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
    event = CloudEvent(
        {
            "specversion": "1.0",
            "id": escalation.escalation_id,
            "source": source,
            "type": ESCALATION.type,
            "time": _utc_ms(escalation.created_at),
            "subject": f"rooms/{escalation.room_id}",
            "dataschema": ESCALATION.dataschema,
            "datacontenttype": CONTENT_TYPE,
            "partitionkey": escalation.room_id,
        },
        json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
    )
    message = ce_kafka.to_binary(event, _FORMAT)
    return KafkaRecord(topic=topic, key=escalation.room_id.encode("utf-8"),
                       headers=list(message.headers.items()), value=bytes(message.value or b""))


def _utc_ms(unix_time: float) -> datetime:
    """Aware UTC datetime truncated to the millisecond (as ``created_at`` in the value)."""
    dt = datetime.fromtimestamp(unix_time, tz=UTC)
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)
