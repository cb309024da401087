"""Kafka records read into audit log entries (``roomwarden worker audit``).

Each topic the recorder follows carries one kind of event; :func:`audit_entry` turns one
record of it into an :class:`alerts.audit.AuditEntry`::

    kind        record (ce_type)                          event_id        occurred_at
    transcript  io.roomwarden.transcript.v1               transcript_id   speech.end_time
    alert       io.roomwarden.moderation.alert.v1         alert_id        speech.end_time
    gap         io.roomwarden.gap.v1                      gap_id          start_time
    escalation  io.roomwarden.moderation.escalation.v1    escalation_id   created_at
    review      io.roomwarden.moderation.review.v1        review_id       reviewed_at
    evidence    io.roomwarden.evidence.v1 (WAV value)     segment_id      end

``event_id`` is the CloudEvents id (checked equal to the id in the data), ``room_id`` the data's
room (checked equal to the record key), ``data`` the record's JSON value as it was on Kafka
(for evidence: the metadata header, with the WAV as the entry's ``blob``). ``occurred_at`` is
when the event happened in the room -- speech time, not when a worker got round to it -- so a
windowed export of a room covers what was said in the window. A gap counts from its start: a
stretch nobody heard belongs to the window in which hearing stopped.

Strict, like the workers' decoders: the audit log must hold only events as their schemas
define them, so a record that is not one raises :class:`BadAuditRecord` with a stable
``reason`` (the dead-letter topic's ``roomwarden-dlq-reason``) and a ``detail`` naming the field
and the value. Nothing is lost by refusing: the record goes to the dead-letter topic unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from alerts.audit import AuditEntry
from alerts.evidence_record import BadEvidence, decode_evidence
from alerts.record_checks import decode_checked, unix_time
from alerts.schemas import ALERT, ESCALATION, GAP, REVIEW, TRANSCRIPT, EventSpec

__all__ = [
    "RECORDED_KINDS",
    "BadAuditRecord",
    "RecordedKind",
    "audit_entry",
]

RecordedKind = Literal["transcript", "alert", "gap", "escalation", "review", "evidence"]
"""The kinds of audit entry that come from Kafka (``purge`` entries are the store's own)."""
RECORDED_KINDS: tuple[RecordedKind, ...] = (
    "transcript", "alert", "evidence", "escalation", "review", "gap")


@dataclass(frozen=True, slots=True)
class _JsonKind:
    spec: EventSpec
    id_field: str
    occurred_at: Callable[[Mapping[str, Any]], str]
    """The RFC 3339 time in the (schema-valid) data the entry is filed under."""


_JSON_KINDS: dict[str, _JsonKind] = {
    "transcript": _JsonKind(TRANSCRIPT, "transcript_id", lambda d: d["speech"]["end_time"]),
    "alert": _JsonKind(ALERT, "alert_id", lambda d: d["speech"]["end_time"]),
    "gap": _JsonKind(GAP, "gap_id", lambda d: d["start_time"]),
    "escalation": _JsonKind(ESCALATION, "escalation_id", lambda d: d["created_at"]),
    "review": _JsonKind(REVIEW, "review_id", lambda d: d["reviewed_at"]),
}


class BadAuditRecord(ValueError):
    """A record cannot go into the audit log as the kind its topic carries.

    Attributes:
        reason: stable label: ``not_a_cloudevent`` (no binary-mode JSON CloudEvent),
            ``wrong_type`` (another event type than the topic's), ``bad_attributes`` (the
            ``ce_*`` headers against ``cloudevent.v1.json``), ``non_finite`` (NaN/infinity),
            ``bad_data`` (the value against the event's schema), ``inconsistent`` (ids or room
            that contradict each other), or for evidence one of
            :data:`alerts.evidence_record.BadEvidenceReason`.
        detail: what exactly is wrong, naming the field and the value.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def audit_entry(
    kind: RecordedKind,
    key: bytes | None,
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes],
    value: bytes | None,
) -> AuditEntry:
    """The audit entry of one record of a topic carrying ``kind`` events.

    Args:
        kind: what the record's topic carries.
        key: the record key (the room id; checked against the data when present).
        headers: the record's headers.
        value: the record's value (for evidence, the WAV: the entry's ``blob``).

    Raises:
        BadAuditRecord: the record is not a valid ``kind`` event (see its ``reason``).
    """
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    if kind == "evidence":
        try:
            evidence = decode_evidence(pairs, value)
        except BadEvidence as exc:
            raise BadAuditRecord(exc.reason, exc.detail) from exc
        _check_key(key, evidence.room_id)
        return AuditEntry(room_id=evidence.room_id, kind="evidence",
                          event_id=evidence.segment_id, occurred_at=evidence.end,
                          data=dict(evidence.metadata),
                          blob=evidence.wav)
    json_kind = _JSON_KINDS[kind]
    spec = json_kind.spec
    attributes, data = decode_checked(
        pairs, value, spec, reject=BadAuditRecord,
        expected=f"this topic carries {spec.type} ({kind}) events")
    event_id = attributes["id"]
    if event_id != data[json_kind.id_field]:
        raise BadAuditRecord("inconsistent", f"ce_id {event_id!r} is not the "
                             f"{json_kind.id_field} {data[json_kind.id_field]!r}")
    room_id = str(data["room_id"])
    if attributes["partitionkey"] != room_id:
        raise BadAuditRecord("inconsistent", f"ce_partitionkey {attributes['partitionkey']!r} "
                             f"is not the room_id {room_id!r}")
    _check_key(key, room_id)
    return AuditEntry(room_id=room_id, kind=kind, event_id=event_id,
                      occurred_at=unix_time(json_kind.occurred_at(data)), data=data)


def _check_key(key: bytes | None, room_id: str) -> None:
    if key and key != room_id.encode("utf-8"):
        raise BadAuditRecord("inconsistent", f"record key {key[:80]!r} is not the room_id "
                             f"{room_id!r}")
