"""Records of every kind the audit recorder follows, built from the stage frames, for the
recorder's unit and integration tests."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import ConsumerRecord

from alerts.console.reviews import Review, review_record
from alerts.envelope import KafkaRecord, alert_record, gap_record, transcript_record
from alerts.escalation_record import escalation_record
from alerts.evidence_record import evidence_record
from ingest.frames import StreamGap
from policy.escalation import Escalation
from tests.conftest import EVENT_T0, build_alert, build_segment, build_transcript

SOURCE = "/roomwarden/test"


@dataclass(frozen=True, slots=True)
class RoomRecords:
    """One flagged utterance's worth of records of one room, keyed by kind."""

    room_id: str
    records: dict[str, KafkaRecord]
    ids: dict[str, str]
    """kind -> the event id (ce_id) of its record."""


def room_records(room: str, *, speaker: str = "alice", offset: float = 12.5,
                 topics: dict[str, str] | None = None) -> RoomRecords:
    """A transcript, the alert raised on it, its evidence, an escalation, a review and a gap,
    all of ``room``; ``topics`` maps kind -> topic (default: the kind's name)."""
    t = topics or {}
    segment = build_segment(room=room, speaker=speaker, offset=offset)
    transcript = build_transcript(segment)
    alert = build_alert(transcript)
    escalation = Escalation(
        escalation_id=Escalation.make_id(room, speaker, "host_warning", alert.alert_id),
        room_id=room, speaker_id=speaker, action="host_warning",
        reason="first confident violation", risk_speaker=2.0, risk_room=2.0,
        alert_ids=(alert.alert_id,), created_at=segment.end_time)
    review = Review(review_id=Review.make_id(alert.alert_id, "ops", "dismiss", room),
                    alert_id=alert.alert_id, room_id=room, action="dismiss", reviewer="ops",
                    role="operator", note="false positive", reviewed_at=EVENT_T0 + 3600)
    gap = StreamGap(room_id=room, speaker_id="", start_time=EVENT_T0 + offset + 30,
                    end_time=EVENT_T0 + offset + 35, reason="janus_unreachable",
                    source="janus")
    records = {
        "transcript": transcript_record(transcript, source=SOURCE,
                                        topic=t.get("transcript", "transcript")),
        "alert": alert_record(alert, source=SOURCE, topic=t.get("alert", "alert")),
        "evidence": evidence_record(segment, alert_ids=[alert.alert_id], source=SOURCE,
                                    topic=t.get("evidence", "evidence")),
        "escalation": escalation_record(escalation, source=SOURCE,
                                        topic=t.get("escalation", "escalation")),
        "review": review_record(review, source=SOURCE, topic=t.get("review", "review")),
        "gap": gap_record(gap, source=SOURCE, topic=t.get("gap", "gap")),
    }
    ids = {"transcript": transcript.transcript_id, "alert": alert.alert_id,
           "evidence": segment.segment_id, "escalation": escalation.escalation_id,
           "review": review.review_id, "gap": gap.gap_id}
    return RoomRecords(room, records, ids)


def consumed(record: KafkaRecord, *, partition: int = 0, offset: int = 0,
             topic: str | None = None) -> ConsumerRecord[bytes, bytes]:
    """``record`` as a consumer would receive it."""
    return ConsumerRecord(topic=topic or record.topic, partition=partition, offset=offset,
                          timestamp=0, timestamp_type=0, key=record.key, value=record.value,
                          checksum=None, serialized_key_size=len(record.key),
                          serialized_value_size=len(record.value),
                          headers=tuple(record.headers))
