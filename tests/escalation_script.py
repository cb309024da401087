"""The scripted alert sequence of the escalation tests (tests/unit/test_policy_escalation.py,
tests/unit/test_escalation_record.py, tests/integration/test_escalations_kafka.py) and the
exact escalations it must give with the default :class:`policy.escalation.EscalationPolicy`."""

from __future__ import annotations

from asr.frames import ConfidenceClass, Transcript
from ingest.frames import SpeechSegment
from policy.escalation import Escalation
from policy.frames import Alert, MatchKind, MatchSpan, Severity, Suggestion

T0 = 1_700_000_000.0
_CATEGORY = {"low": "spam", "medium": "abuse", "high": "violence", "critical": "self_harm"}
_SUGGESTION: dict[str, Suggestion] = {"low": "review", "medium": "review", "high": "block",
                                      "critical": "review"}


def make_alert(t: float, speaker: str, severity: Severity = "medium", *, room: str = "room-a",
               confidence: ConfidenceClass = "confident", suggestion: Suggestion | None = None,
               kind: MatchKind = "exact", n: int = 0) -> Alert:
    """An alert on speech that ended ``t`` seconds after :data:`T0`."""
    pcm = bytes(320)
    offset = t + n * 0.001
    segment = SpeechSegment(
        room_id=room, speaker_id=speaker,
        segment_id=SpeechSegment.make_id(room, speaker, offset, pcm), seq=0, pcm=pcm,
        start_offset_s=offset, end_offset_s=offset + 0.01, start_time=T0 + t - 1.0,
        end_time=T0 + t, end_monotonic=0.0)
    transcript = Transcript(segment=segment, transcript_id=f"t-{segment.segment_id}",
                            text="you idiot", language="en", words=(), confidence=0.9,
                            confidence_class=confidence, model_id="tiny.en@test", asr_seconds=0.1)
    category = _CATEGORY[severity]
    rule_id = f"{category}.rule"
    return Alert(alert_id=Alert.make_id(segment.segment_id, rule_id), transcript=transcript,
                 category=category, severity=severity,
                 suggestion=suggestion or (_SUGGESTION[severity] if confidence == "confident"
                                           else "review"),
                 rule_id=rule_id, match=MatchSpan(0, 9, "you idiot", kind), policy_hash="0" * 64)


def summary(escalations: list[Escalation]) -> list[tuple[float, str, str, str]]:
    return [(round(e.created_at - T0, 3), e.room_id, e.speaker_id, e.action) for e in escalations]


def scripted_sequence() -> list[Alert]:
    """Several speakers, two rooms, mixed severities, low-confidence speech, a 40-alert rant in
    60 s, a brigade that makes a room worth closing, and a quiet hour that forgives."""
    alerts = [
        make_alert(0, "alice", "medium"),                      # first violation -> warn host
        make_alert(10, "bob", "high", confidence="low"),       # unsure -> review only
        make_alert(20, "bob", "high", confidence="low"),       # review rate-limited
        make_alert(30, "carol", "high"),                       # high -> operator at once
    ]
    alerts += [make_alert(100 + 1.5 * i, "dave", "medium") for i in range(40)]  # the rant
    alerts += [
        make_alert(200, "erin", "critical", room="room-b"),    # other room, critical
        make_alert(400, "alice", "high"),                      # third escalated speaker in A
        make_alert(2400, "dave", "medium"),                    # after 37 quiet minutes
    ]
    return alerts


EXPECTED = [
    (0.0, "room-a", "alice", "host_warning"),
    (10.0, "room-a", "bob", "review"),
    (30.0, "room-a", "carol", "operator_alert"),
    (100.0, "room-a", "dave", "host_warning"),
    (104.5, "room-a", "dave", "operator_alert"),   # 4th alert: risk 7.96 >= 6
    (109.0, "room-a", "dave", "recommend_mute"),   # 7th alert: 13.86 (6th was 11.90)
    (118.0, "room-a", "dave", "recommend_remove"),  # 13th alert: 25.47 (12th was 23.55)
    (200.0, "room-b", "erin", "operator_alert"),
    (400.0, "room-a", "alice", "operator_alert"),
    (400.0, "room-a", "", "recommend_close_room"),  # carol, dave, alice within 600 s
    (2400.0, "room-a", "dave", "host_warning"),     # risk decayed from 74.8 to 0.42, +2
]
