"""The policy engine: one transcript in, its alerts out.

``PolicyEngine(pack).evaluate(transcript)`` normalizes the transcript text once, asks the matcher
for every rule term in it (word-bounded), keeps the longest of overlapping matches within a
category, and turns each survivor into an :class:`~policy.frames.Alert` whose span points into
the *original* transcript text.

Confidence: a ``rejected`` transcript yields nothing; a ``low`` one yields alerts whose suggestion
is at most ``review`` (the engine never suggests blocking on speech it is unsure it heard).

The engine is pure and synchronous (7-50 us per transcript with the default pack), so the
pipeline calls it inline on its event loop. It keeps plain counters (:attr:`PolicyEngine.stats`)
for the composition root to read; it holds no metrics objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from asr.frames import Transcript
from policy.frames import Alert, MatchSpan, Suggestion
from policy.matcher import Match, Matcher, PhraseMatcher
from policy.normalize import normalize
from policy.rules import Rule, RulePack

__all__ = ["EngineStats", "PolicyEngine"]

_RANK: dict[str, int] = {"pass": 0, "review": 1, "block": 2}


@dataclass(slots=True)
class EngineStats:
    """Running counts, read by the composition root (never reset by the engine)."""

    evaluated: int = 0
    """Transcripts passed to :meth:`PolicyEngine.evaluate`."""
    skipped_rejected: int = 0
    """Of those, ``rejected`` transcripts (not matched at all)."""
    matches: int = 0
    """Raw term matches, before overlaps within a category were resolved."""
    alerts: int = 0
    """Alerts returned."""


class PolicyEngine:
    """Evaluates transcripts against one :class:`RulePack`.

    Args:
        pack: the rules (immutable; to change rules build a new engine and swap it in).
        matcher: finds the pack's normalized terms in normalized text; defaults to
            :class:`PhraseMatcher`. Keys are indexes into ``pack.rules``.
    """

    def __init__(self, pack: RulePack, matcher: Matcher | None = None) -> None:
        self.pack = pack
        self._rules: tuple[Rule, ...] = pack.rules
        self._matcher: Matcher = matcher or PhraseMatcher(
            (rule.normalized, i) for i, rule in enumerate(pack.rules))
        self.stats = EngineStats()

    def evaluate(self, transcript: Transcript) -> list[Alert]:
        """Alerts for ``transcript``, ordered by position in its text (then category, rule)."""
        self.stats.evaluated += 1
        if transcript.confidence_class == "rejected":
            self.stats.skipped_rejected += 1
            return []
        text = transcript.text
        if not text:
            return []
        norm = normalize(text)
        matches = self._matcher.find_all(norm.text)
        if not matches:
            return []
        self.stats.matches += len(matches)
        confident = transcript.confidence_class == "confident"
        pack = self.pack
        segment_id = transcript.segment.segment_id
        alerts: list[Alert] = []
        seen: dict[str, int] = {}
        for m in sorted(self._resolve(matches), key=lambda m: (m.start, m.end, m.key)):
            rule = self._rules[m.key]
            occurrence = seen.get(rule.id, 0)
            seen[rule.id] = occurrence + 1
            category = pack.categories[rule.category]
            suggestion: Suggestion = category.suggestion
            if not confident and _RANK[suggestion] > _RANK["review"]:
                suggestion = "review"
            start, end = norm.original_span(m.start, m.end)
            alerts.append(Alert(
                alert_id=Alert.make_id(segment_id, rule.id, occurrence),
                transcript=transcript,
                category=rule.category,
                severity=category.severity,
                suggestion=suggestion,
                rule_id=rule.id,
                match=MatchSpan(start, end, text[start:end]),
                policy_hash=pack.sha256,
                policy_name=pack.name,
                policy_version=pack.version,
            ))
        alerts.sort(key=lambda a: (a.match.start, a.category, a.rule_id))
        self.stats.alerts += len(alerts)
        return alerts

    def _resolve(self, matches: list[Match]) -> list[Match]:
        """Within each category, keep the longest of overlapping matches (ties: earlier start,
        then earlier rule in the pack). Different categories never suppress each other."""
        if len(matches) == 1:
            return matches
        rules = self._rules
        by_category: dict[str, list[Match]] = {}
        for m in matches:
            by_category.setdefault(rules[m.key].category, []).append(m)
        kept: list[Match] = []
        for group in by_category.values():
            if len(group) == 1:
                kept.append(group[0])
                continue
            group.sort(key=lambda m: (m.start - m.end, m.start, m.key))
            chosen: list[Match] = []
            for m in group:
                if all(m.end <= c.start or m.start >= c.end for c in chosen):
                    chosen.append(m)
            kept.extend(chosen)
        return kept
