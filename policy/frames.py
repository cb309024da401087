"""Event types produced by the policy stage."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal, get_args

from asr.frames import Transcript

Severity = Literal["low", "medium", "high", "critical"]
Suggestion = Literal["pass", "review", "block"]
MatchKind = Literal["exact", "normalized", "leet", "fuzzy", "pinyin", "cross_segment",
                    "classifier"]
"""How a term was found, from most to least literal: ``exact`` (the span is the term, up to
case and spacing), ``normalized`` (after width/punctuation/spacing/script folding),
``leet`` (digits, symbols or look-alike letters folded), ``fuzzy`` (repeated letters
squeezed: ``fuuuck``), ``pinyin`` (a Chinese sound-alike or Latin-typed pinyin),
``cross_segment`` (the phrase was split across consecutive segments of one speaker). Consumers
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
        alert_id: deterministic UUID (v5) of (segment id, rule id, span start): the same speech
            matched by the same rule always yields the same id, so duplicates are harmless.
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
    classifier_model_id: str = ""
    """For a classifier alert (rule ``classifier.<category>``): the model that scored it."""
    classifier_probability: float | None = None
    """For a classifier alert: the calibrated P(abusive) it gave (the score behind the alert)."""

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
