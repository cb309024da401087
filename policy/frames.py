"""Event types produced by the policy stage."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal, get_args

from asr.frames import Transcript

Severity = Literal["low", "medium", "high", "critical"]
Suggestion = Literal["pass", "review", "block"]
MatchKind = Literal["exact", "regex", "normalized", "leet", "fuzzy", "pinyin", "cross_segment",
                    "classifier"]
"""How a term was found, from most to least literal: ``exact`` (the span is the term, up to
case and spacing), ``regex`` (a pack ``regex:`` rule matched the text as transcribed),
``normalized`` (after width/punctuation/spacing/script folding),
``leet`` (digits, symbols or look-alike letters folded), ``fuzzy`` (repeated letters
squeezed: ``fuuuck``), ``pinyin`` (a Chinese sound-alike or Latin-typed pinyin),
``cross_segment`` (the phrase was split across consecutive segments of one speaker),
``classifier`` (the text classifier flagged the whole transcript). Consumers
may lower severity or route sound-alike and fuzzy matches to review."""
MATCH_KINDS: tuple[str, ...] = get_args(MatchKind)

_ALERT_NAMESPACE = uuid.UUID("6b1f3c1e-5d0a-4c39-9a57-52a0d6f1e0aa")


@dataclass(frozen=True, slots=True)
class MatchSpan:
    """Where a rule matched, as character offsets into ``Transcript.text`` (end exclusive)."""

    start: int
    end: int
    text: str
    kind: MatchKind = "exact"
    """How the term was found (see :data:`MatchKind`)."""


@dataclass(frozen=True, slots=True)
class Alert:
    """A policy verdict that something said breaks a rule.

    Attributes:
        alert_id: deterministic UUID (v5) of (segment id, rule id, n-th match of that rule):
            the same speech matched by the same rule always yields the same id, so duplicates
            are harmless (:meth:`make_id`).
        transcript: the transcript the verdict rests on.
        category: rule pack category, e.g. ``abuse``.
        severity: the category's severity.
        suggestion: what the pack suggests (``review`` for low-confidence transcripts).
        rule_id: the id of the term/rule that matched.
        match: the matched span in the transcript text.
        policy_hash: sha256 of the rule pack file in force.
        policy_name / policy_version: from the rule pack.
        transcript_ids: for a ``cross_segment`` match, the ids of every transcript the phrase
            spans, oldest first (the last is ``transcript``'s); empty otherwise.

    Together these are a statement of reasons: what was said (``transcript``, ``match``), which
    rule of which pack version (``rule_id``, ``policy_*``), what it means (``category``,
    ``severity``, ``suggestion``), how sure we are (``score``, the transcript's confidence, the
    classifier's opinion) and which transcripts it rests on (:attr:`evidence_ids`).
    """

    alert_id: str
    transcript: Transcript = field(repr=False)
    category: str
    severity: Severity
    suggestion: Suggestion
    rule_id: str
    match: MatchSpan
    policy_hash: str
    policy_name: str = ""
    policy_version: str = ""
    transcript_ids: tuple[str, ...] = ()
    score: float | None = None
    """The evidence behind the alert, in [0, 1]: for a rule match, the mean ASR probability of
    the matched words (:func:`policy.explain.span_probability`); for a classifier alert, the
    classifier's probability. ``None`` only for alerts not made by the engine."""
    classifier_model_id: str = ""
    """The text classifier that scored the transcript (every alert of a transcript, when the
    engine has a classifier; for rule ``classifier.<category>`` it is what raised the alert)."""
    classifier_probability: float | None = None
    """The classifier's calibrated P(abusive) for the whole transcript, beside the rule's verdict
    (a statement of reasons shows both); ``None`` when the engine has no classifier."""

    @property
    def evidence_ids(self) -> tuple[str, ...]:
        """Every transcript id the verdict rests on, oldest first."""
        return self.transcript_ids or (self.transcript.transcript_id,)

    @property
    def room_id(self) -> str:
        return self.transcript.room_id

    @property
    def speaker_id(self) -> str:
        return self.transcript.speaker_id

    @staticmethod
    def make_id(segment_id: str, rule_id: str, occurrence: int = 0) -> str:
        """Deterministic alert id: the ``occurrence``-th match (0-based, in text order) of
        ``rule_id`` in the speech ``segment_id``. Not the character offset: a replay after a
        crash may decode the same speech with slightly different text (other segments packed
        beside it), and must still produce the same id so consumers dedupe it."""
        return str(uuid.uuid5(_ALERT_NAMESPACE, f"{segment_id}/{rule_id}/{occurrence}"))
