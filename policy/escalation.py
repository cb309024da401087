"""Risk and escalation: from a stream of alerts to a few decisions a moderator can act on.

One alert is one utterance; a moderator acts on patterns. :class:`Escalator` keeps, per speaker
and per room, an exponentially decaying risk score (each alert adds its severity weight; the
score halves every ``half_life_s`` of speech time) and climbs a ladder:

====================  =====================================================================
rung                  fires when (speaker rungs: per (room, speaker); room rung: per room)
====================  =====================================================================
host_warning          the first confident violation (speaker risk >= ``warn_at``)
operator_alert        a repeat (speaker risk >= ``operator_at``) or any high/critical alert
recommend_mute        speaker risk >= ``mute_at``
recommend_remove      speaker risk >= ``remove_at``
recommend_close_room  room risk >= ``close_room_at``, or ``close_room_speakers`` distinct
                      speakers reached operator_alert or above within ``close_room_window_s``
review                an alert we may not act on automatically (see below)
====================  =====================================================================

Only the highest rung reached at an alert fires (it supersedes the lower ones), and a rung that
fired starts the cooldown of itself *and every lower rung* for that speaker: one rant is one
warning, then one operator alert, then one mute recommendation -- not forty alerts. While the
reached rung is cooling down nothing fires (the moderator already has the stronger call). After a
cooldown ends, a speaker who is still above a threshold and still violating gets that rung again:
a reminder, at most once per cooldown.

Review, never automatic action: an alert from a ``low``-confidence transcript (the engine already
caps its suggestion at ``review``), or raised by the text classifier (``match.kind ==
"classifier"``: a model's guess), only ever yields ``review`` -- rate-limited per speaker -- and
adds only ``uncertain_weight`` (default 0) times its weight to the risk: we do not push anyone
towards a mute on speech we are not sure we heard. The pack's own ``suggestion: review`` on a
*confident* transcript (the default pack's ``abuse``) is actionable by default, because every
rung here is a notice or a recommendation to a human, never a sanction; set
``pack_review_actionable=False`` to route those to review too. ``suggestion: pass`` alerts are
ignored (the pack says they need nothing). ``rejected`` transcripts never reach here.

Time is the alerts' speech time (``segment.end_time``), never the wall clock: a replay of the
same alerts gives the same decisions and the same ids. An alert older than the speaker's last
one (out of order) adds its weight without decaying backwards. An alert id seen before (a
redelivery) is ignored.

Memory is bounded: speaker and room states live in LRU maps of ``max_speakers`` / ``max_rooms``
entries, and a state idle for ``state_ttl_s`` of speech time is dropped (its risk has decayed
to nothing by then; the TTL must cover every cooldown so dropping it never re-fires a rung).
"""

from __future__ import annotations

import math
import uuid
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Literal, get_args

from policy.escalation_state import BoundedStates, DecayingRisk, decayed
from policy.frames import Alert, Severity

__all__ = [
    "ACTIONS",
    "SPEAKER_RUNGS",
    "Escalation",
    "EscalationAction",
    "EscalationPolicy",
    "EscalationStats",
    "Escalator",
    "decayed",
]

EscalationAction = Literal["host_warning", "operator_alert", "recommend_mute", "recommend_remove",
                           "recommend_close_room", "review"]
ACTIONS: tuple[str, ...] = get_args(EscalationAction)
SPEAKER_RUNGS: tuple[EscalationAction, ...] = (
    "host_warning", "operator_alert", "recommend_mute", "recommend_remove")
"""The speaker ladder, lowest first."""

_ESCALATION_NAMESPACE = uuid.UUID("0d7e4b52-8f3a-4f61-9c2e-3a8b5e7d9f10")


@dataclass(frozen=True, slots=True)
class Escalation:
    """A decision of the escalation sub-stage: warn, alert, recommend, or send to review.

    Attributes:
        escalation_id: deterministic UUID (v5) of (room, speaker, action, triggering alert id):
            a replay yields the same id, so consumers dedupe.
        room_id: the room.
        speaker_id: the speaker; ``""`` for a room-level action (``recommend_close_room``).
        action: the rung (see :data:`EscalationAction`).
        reason: one human sentence saying why, with the numbers.
        risk_speaker / risk_room: the decayed risk scores right after the triggering alert.
        alert_ids: the alerts it rests on, oldest first; the triggering alert is last.
        created_at: speech time (Unix seconds, the triggering alert's ``segment.end_time``).
    """

    escalation_id: str
    room_id: str
    speaker_id: str
    action: EscalationAction
    reason: str
    risk_speaker: float
    risk_room: float
    alert_ids: tuple[str, ...]
    created_at: float

    @staticmethod
    def make_id(room_id: str, speaker_id: str, action: str, alert_id: str) -> str:
        return str(uuid.uuid5(_ESCALATION_NAMESPACE,
                              f"{room_id}/{speaker_id}/{action}/{alert_id}"))


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """Settings of :class:`Escalator`; every value is checked at construction
    (:class:`ValueError` naming the field)."""

    weight_low: float = 1.0
    weight_medium: float = 2.0
    weight_high: float = 4.0
    weight_critical: float = 8.0
    """Risk added by one alert of each severity (a critical one counts as eight low ones)."""
    half_life_s: float = 300.0
    """Speech seconds in which a risk score halves: five quiet minutes forgive half."""
    uncertain_weight: float = 0.0
    """Fraction of its weight a review-only alert (low confidence, classifier) adds to the risk,
    in [0, 1). 0: unsure speech never moves anyone up the ladder."""
    pack_review_actionable: bool = True
    """Whether a confident alert whose pack suggestion is ``review`` may climb the ladder
    (True) or only goes to review (False)."""
    warn_at: float = 1.0
    """Speaker risk at which the host is warned: any confident violation by default."""
    operator_at: float = 6.0
    """Speaker risk at which the operator is alerted (a repeat: three medium alerts close
    together). Any high or critical alert alerts the operator at once as well."""
    operator_severities: frozenset[Severity] = frozenset({"high", "critical"})
    """Severities that alert the operator on their first occurrence."""
    mute_at: float = 12.0
    """Speaker risk at which muting the speaker is recommended."""
    remove_at: float = 24.0
    """Speaker risk at which removing the speaker is recommended."""
    close_room_at: float = 100.0
    """Room risk at which closing the room is recommended: well above ``remove_at`` so one
    ranting speaker gets removed, not the whole room closed."""
    close_room_speakers: int = 3
    """Distinct speakers at operator_alert or above within ``close_room_window_s`` that make a
    room recommended for closing (a brigade, not one bad actor)."""
    close_room_window_s: float = 600.0
    speaker_cooldown_s: float = 300.0
    """After a speaker rung fires, that rung and every lower one stay quiet for this long."""
    room_cooldown_s: float = 900.0
    """After ``recommend_close_room`` fires for a room, it stays quiet for this long."""
    review_cooldown_s: float = 60.0
    """At most one ``review`` per (room, speaker) in this long."""
    evidence_alerts: int = 10
    """How many of the most recent alert ids an escalation carries (bounded records)."""
    max_speakers: int = 10_000
    """Speaker states kept (least recently active evicted first)."""
    max_rooms: int = 2_000
    """Room states kept (least recently active evicted first)."""
    seen_alerts: int = 20_000
    """Alert ids remembered to ignore redeliveries."""
    state_ttl_s: float = 3_600.0
    """Speech seconds after which an idle speaker or room state is dropped; must be at least
    every cooldown and the close-room window."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or isinstance(value, frozenset):
                continue
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"EscalationPolicy.{f.name} must be a finite number: {value!r}")
            if value < 0:
                raise ValueError(f"EscalationPolicy.{f.name} must not be negative: {value!r}")
        for name in ("weight_low", "weight_medium", "weight_high", "weight_critical",
                     "half_life_s", "warn_at", "close_room_at", "close_room_window_s",
                     "close_room_speakers", "evidence_alerts", "max_speakers", "max_rooms",
                     "seen_alerts", "state_ttl_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EscalationPolicy.{name} must be > 0: {getattr(self, name)!r}")
        if not self.uncertain_weight < 1.0:
            raise ValueError("EscalationPolicy.uncertain_weight must be in [0, 1): "
                             f"{self.uncertain_weight!r} (review-only alerts never count fully)")
        if not self.warn_at <= self.operator_at <= self.mute_at <= self.remove_at:
            raise ValueError(
                "EscalationPolicy thresholds must climb: warn_at <= operator_at <= mute_at <= "
                f"remove_at, got {self.warn_at} / {self.operator_at} / {self.mute_at} / "
                f"{self.remove_at}")
        unknown = set(self.operator_severities) - set(get_args(Severity))
        if unknown:
            known = ", ".join(get_args(Severity))
            raise ValueError(f"EscalationPolicy.operator_severities: unknown severity "
                             f"{sorted(unknown)} (expected some of {known})")
        longest = max(self.speaker_cooldown_s, self.room_cooldown_s, self.review_cooldown_s,
                      self.close_room_window_s)
        if self.state_ttl_s < longest:
            raise ValueError(f"EscalationPolicy.state_ttl_s ({self.state_ttl_s}) must be at "
                             f"least the longest cooldown/window ({longest}): dropping a state "
                             "earlier would forget a cooldown and fire the rung again")

    def weight(self, severity: Severity) -> float:
        return {"low": self.weight_low, "medium": self.weight_medium, "high": self.weight_high,
                "critical": self.weight_critical}[severity]


@dataclass(slots=True)
class _SpeakerState:
    risk: DecayingRisk = field(default_factory=DecayingRisk)
    quiet_until: dict[str, float] = field(default_factory=dict)
    """Per action: speech time before which it may not fire again."""
    evidence: deque[str] = field(default_factory=deque)


@dataclass(slots=True)
class _RoomState:
    risk: DecayingRisk = field(default_factory=DecayingRisk)
    quiet_until: float = -math.inf
    escalated: dict[str, float] = field(default_factory=dict)
    """Speaker -> last time they reached operator_alert or above."""
    evidence: deque[str] = field(default_factory=deque)


@dataclass(slots=True)
class EscalationStats:
    """Running counts for the composition root (never reset)."""

    observed: int = 0
    duplicates: int = 0
    ignored_pass: int = 0
    review_only: int = 0
    escalations: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ACTIONS, 0))
    evicted_speakers: int = 0
    evicted_rooms: int = 0


class Escalator:
    """Turns alerts into escalations; pure and deterministic (no clock, no I/O).

    ``observe(alerts)`` takes alerts in the order they were produced (a transcript's alerts,
    transcript after transcript) and returns the escalations they cause, in order.
    """

    def __init__(self, policy: EscalationPolicy | None = None) -> None:
        self.policy = policy or EscalationPolicy()
        p = self.policy
        self._speakers: BoundedStates[tuple[str, str], _SpeakerState] = BoundedStates(
            p.max_speakers, p.state_ttl_s)
        self._rooms: BoundedStates[str, _RoomState] = BoundedStates(p.max_rooms, p.state_ttl_s)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.stats = EscalationStats()

    @property
    def tracked(self) -> tuple[int, int]:
        """(speakers, rooms) currently held in memory."""
        return len(self._speakers), len(self._rooms)

    def observe(self, alerts: Sequence[Alert]) -> list[Escalation]:
        out: list[Escalation] = []
        for alert in alerts:
            out.extend(self._observe_one(alert))
        self.stats.evicted_speakers = self._speakers.evicted
        self.stats.evicted_rooms = self._rooms.evicted
        for e in out:
            self.stats.escalations[e.action] += 1
        return out

    def _is_duplicate(self, alert_id: str) -> bool:
        if alert_id in self._seen:
            self._seen.move_to_end(alert_id)
            return True
        self._seen[alert_id] = None
        if len(self._seen) > self.policy.seen_alerts:
            self._seen.popitem(last=False)
        return False

    def _review_only(self, alert: Alert) -> bool:
        return (alert.transcript.confidence_class != "confident"
                or alert.match.kind == "classifier"
                or (alert.suggestion == "review" and not self.policy.pack_review_actionable))

    def _observe_one(self, alert: Alert) -> list[Escalation]:
        p = self.policy
        self.stats.observed += 1
        if self._is_duplicate(alert.alert_id):
            self.stats.duplicates += 1
            return []
        if alert.suggestion == "pass":
            self.stats.ignored_pass += 1
            return []
        now = alert.transcript.segment.end_time
        room_id, speaker_id = alert.room_id, alert.speaker_id
        room = self._rooms.touch(room_id, now, _RoomState)
        speaker = self._speakers.touch((room_id, speaker_id), now, _SpeakerState)
        review_only = self._review_only(alert)
        weight = p.weight(alert.severity) * (p.uncertain_weight if review_only else 1.0)
        risk_speaker = speaker.risk.add(weight, now, p.half_life_s)
        risk_room = room.risk.add(weight, now, p.half_life_s)
        # Cooldowns run on the latest speech time seen (an out-of-order alert is "now").
        speaker_now, room_now = speaker.risk.at, room.risk.at
        for evidence in (speaker.evidence, room.evidence):
            evidence.append(alert.alert_id)
            while len(evidence) > p.evidence_alerts:
                evidence.popleft()

        def make(action: EscalationAction, who: str, reason: str,
                 evidence: deque[str]) -> Escalation:
            return Escalation(
                escalation_id=Escalation.make_id(room_id, who, action, alert.alert_id),
                room_id=room_id, speaker_id=who, action=action, reason=reason,
                risk_speaker=risk_speaker, risk_room=risk_room, alert_ids=tuple(evidence),
                created_at=now)

        if review_only:
            self.stats.review_only += 1
            why = ("low-confidence transcript" if alert.transcript.confidence_class != "confident"
                   else "classifier guess" if alert.match.kind == "classifier"
                   else "pack suggests review")
            if speaker_now < speaker.quiet_until.get("review", -math.inf):
                return []
            speaker.quiet_until["review"] = speaker_now + p.review_cooldown_s
            return [make("review", speaker_id,
                         f"{alert.severity} {alert.category} alert on a {why}: a human should "
                         f"listen before anything is done", speaker.evidence)]

        out: list[Escalation] = []
        rung = self._speaker_rung(alert, risk_speaker)
        if rung is not None and speaker_now >= speaker.quiet_until.get(rung, -math.inf):
            for lower in SPEAKER_RUNGS[:SPEAKER_RUNGS.index(rung) + 1]:
                speaker.quiet_until[lower] = speaker_now + p.speaker_cooldown_s
            out.append(make(rung, speaker_id, self._reason(rung, alert, risk_speaker),
                            speaker.evidence))
        if rung is not None and SPEAKER_RUNGS.index(rung) >= 1:
            room.escalated[speaker_id] = max(now, room.escalated.get(speaker_id, now))
        close = self._close_room_reason(room, room_now, risk_room)
        if close is not None and room_now >= room.quiet_until:
            room.quiet_until = room_now + p.room_cooldown_s
            out.append(make("recommend_close_room", "", close, room.evidence))
        return out

    def _speaker_rung(self, alert: Alert, risk: float) -> EscalationAction | None:
        p = self.policy
        if risk >= p.remove_at:
            return "recommend_remove"
        if risk >= p.mute_at:
            return "recommend_mute"
        if risk >= p.operator_at or alert.severity in p.operator_severities:
            return "operator_alert"
        if risk >= p.warn_at:
            return "host_warning"
        return None

    def _reason(self, rung: EscalationAction, alert: Alert, risk: float) -> str:
        p = self.policy
        said = f"{alert.severity} {alert.category} ({alert.rule_id})"
        if rung == "host_warning":
            return f"confident violation: {said}; speaker risk {risk:.1f}"
        if rung == "operator_alert":
            if alert.severity in p.operator_severities:
                return f"{alert.severity} severity: {said}; speaker risk {risk:.1f}"
            return f"repeat violations: speaker risk {risk:.1f} >= {p.operator_at:g}; last {said}"
        limit = p.mute_at if rung == "recommend_mute" else p.remove_at
        return f"speaker risk {risk:.1f} >= {limit:g}; last {said}"

    def _close_room_reason(self, room: _RoomState, now: float, risk_room: float) -> str | None:
        p = self.policy
        for who, at in list(room.escalated.items()):
            if now - at > p.close_room_window_s:
                del room.escalated[who]
        if len(room.escalated) >= p.close_room_speakers:
            return (f"{len(room.escalated)} speakers escalated to the operator within "
                    f"{p.close_room_window_s:g} s; room risk {risk_room:.1f}")
        if risk_room >= p.close_room_at:
            return f"room risk {risk_room:.1f} >= {p.close_room_at:g}"
        return None
