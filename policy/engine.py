"""The policy engine: one transcript in, its alerts out.

``PolicyEngine(pack).evaluate(transcript)`` finds every rule term in the transcript
(:class:`policy.term_index.TermIndex`: normalized, leet, fuzzy and pinyin matching, each match
with its :data:`~policy.frames.MatchKind`), keeps the longest of overlapping matches within a
category (ties: the more literal kind), and turns each survivor into an
:class:`~policy.frames.Alert` whose span points into the *original* transcript text.

Split phrases: the engine remembers each speaker's last segments (:mod:`policy.window`) and
also matches them joined with the new one; a match that starts in an earlier segment and ends in
this one is reported once, on this segment, as ``cross_segment`` with every transcript id it
spans (its span in this transcript is the part said here).

Confidence: a ``rejected`` transcript yields nothing; a ``low`` one yields alerts whose suggestion
is at most ``review`` (the engine never suggests blocking on speech it is unsure it heard).

The engine is pure and synchronous (a few microseconds per transcript with no match, see
``bench/policy_matching.py``), so the pipeline calls it inline on its event loop. It keeps plain
counters (:attr:`PolicyEngine.stats`) for the composition root to read; it holds no metrics
objects.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from asr.frames import Transcript
from policy.classifier import ClassifierOutput, TextClassifier
from policy.explain import span_probability
from policy.extra_rules import ExtraRules
from policy.frames import Alert, MatchKind, MatchSpan, Suggestion
from policy.matcher import Matcher
from policy.normalize import normalize
from policy.pinyin import PinyinMode
from policy.rules import Rule, RulePack
from policy.term_index import KIND_RANK, Found, TermIndex
from policy.window import SpeakerWindows

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
    classifier_alerts: int = 0
    """Of those, raised by the text classifier (no rule matched in that category)."""


class _MatcherIndex:
    """A plain :class:`Matcher` over normalized text, as a term index (no evasion layers)."""

    def __init__(self, matcher: Matcher, rules: tuple[Rule, ...]) -> None:
        self._matcher = matcher
        self._terms = [" ".join(r.term.casefold().split()) for r in rules]

    def find(self, text: str) -> list[Found]:
        norm = normalize(text)
        out: list[Found] = []
        for m in self._matcher.find_all(norm.text):
            s, e = norm.original_span(m.start, m.end)
            exact = " ".join(text[s:e].casefold().split()) == self._terms[m.key]
            out.append(Found(s, e, m.key, "exact" if exact else "normalized"))
        return out


@dataclass(frozen=True, slots=True)
class _Hit:
    """A match being judged: span in the transcript's text, rule key, kind, transcripts."""

    start: int
    end: int
    key: int
    kind: MatchKind
    transcript_ids: tuple[str, ...] = ()


class PolicyEngine:
    """Evaluates transcripts against one :class:`RulePack`.

    Args:
        pack: the rules (immutable; to change rules build a new engine and swap it in).
        matcher: replaces the default :class:`TermIndex` with a plain matcher over normalized
            text (keys = indexes into ``pack.rules``); no leet/fuzzy/pinyin layers then.
        pinyin: Chinese sound-alike matching (``toneless``, ``tones`` or ``off``).
        fuzzy: repeated-letter variants (``fuuuck``).
        windows: per-speaker memory for phrases split across segments; default
            ``SpeakerWindows()`` (2 segments, 3 s gaps); ``None`` turns it off.
        classifier: scores every non-rejected transcript (:mod:`policy.classifier`); at
            ``classifier_threshold`` or above, and when no rule already flagged the
            ``classifier_category``, one alert ``classifier.<category>`` over the whole text.
            It only ever suggests ``review``: a model's guess never acts on its own.
        classifier_threshold: calibrated P(abusive) at which the classifier alerts. High by
            default (0.9): the probabilities are calibrated on datasets that are 50-83 %
            abusive, far more than a live room, so precision in a room is lower than there.
        classifier_category: the pack category its alerts take severity from (must exist).
    """

    _DEFAULT_WINDOWS = object()

    def __init__(self, pack: RulePack, matcher: Matcher | None = None, *,
                 pinyin: PinyinMode = "toneless", fuzzy: bool = True,
                 windows: SpeakerWindows | None | object = _DEFAULT_WINDOWS,
                 classifier: TextClassifier | None = None, classifier_threshold: float = 0.9,
                 classifier_category: str = "abuse") -> None:
        if classifier is not None and classifier_category not in pack.categories:
            raise ValueError(f"classifier_category {classifier_category!r} is not a category of "
                             f"rule pack {pack.name!r} (it has: {', '.join(pack.categories)})")
        if not 0.0 <= classifier_threshold <= 1.0:
            raise ValueError(f"classifier_threshold must be in [0, 1]: {classifier_threshold}")
        self._classifier = classifier
        self._classifier_threshold = classifier_threshold
        self._classifier_category = classifier_category
        self.pack = pack
        # -- extra rules (regex terms, allow-lists): policy/extra_rules.py ----------------------
        self._extra = ExtraRules(pack, key_offset=len(pack.rules))
        self._rules: tuple[Rule, ...] = pack.rules + self._extra.rules
        # -- end extra rules -------------------------------------------------------------------
        self._index: TermIndex | _MatcherIndex = (
            _MatcherIndex(matcher, pack.rules) if matcher is not None
            else TermIndex(pack.rules, pinyin=pinyin, fuzzy=fuzzy))
        self.windows: SpeakerWindows | None = (
            SpeakerWindows() if windows is self._DEFAULT_WINDOWS
            else windows if isinstance(windows, SpeakerWindows) else None)
        self.stats = EngineStats()

    def evaluate(self, transcript: Transcript) -> list[Alert]:
        """Alerts for ``transcript``: rule matches ordered by position in its text (then
        category, rule), then the classifier's alert if it raised one. With a classifier, every
        alert carries its opinion of the whole transcript (the text is scored once)."""
        alerts = self._rule_alerts(transcript)
        verdict = self._classify(transcript)
        if verdict is None:
            return alerts
        alerts = [replace(a, classifier_model_id=verdict.model_id,
                          classifier_probability=verdict.probability) for a in alerts]
        if (verdict.probability >= self._classifier_threshold
                and not any(a.category == self._classifier_category for a in alerts)):
            alerts.append(self._classifier_alert(transcript, verdict))
            self.stats.alerts += 1
            self.stats.classifier_alerts += 1
        return alerts

    def _classify(self, transcript: Transcript) -> ClassifierOutput | None:
        if (self._classifier is None or transcript.confidence_class == "rejected"
                or not transcript.text.strip()):
            return None
        return self._classifier.score(transcript.text)

    def _classifier_alert(self, transcript: Transcript, verdict: ClassifierOutput) -> Alert:
        """One review-only alert over the whole text: a model's guess never acts on its own."""
        pack, text = self.pack, transcript.text
        rule_id = f"classifier.{self._classifier_category}"
        return Alert(
            alert_id=Alert.make_id(transcript.segment.segment_id, rule_id),
            transcript=transcript,
            category=self._classifier_category,
            severity=pack.categories[self._classifier_category].severity,
            suggestion="review",
            rule_id=rule_id,
            match=MatchSpan(0, len(text), text, "classifier"),
            policy_hash=pack.sha256,
            policy_name=pack.name,
            policy_version=pack.version,
            score=verdict.probability,
            classifier_model_id=verdict.model_id,
            classifier_probability=verdict.probability,
        )

    def _rule_alerts(self, transcript: Transcript) -> list[Alert]:
        self.stats.evaluated += 1
        if transcript.confidence_class == "rejected":
            self.stats.skipped_rejected += 1
            return []
        text = transcript.text
        if not text:
            return []
        hits = [_Hit(f.start, f.end, f.key, f.kind) for f in self._index.find(text)]
        if self.windows is not None:
            hits += self._cross_segment(transcript)
            self.windows.push(transcript)
        # -- extra rules: regex matches in, allow-listed matches out (policy/extra_rules.py) --
        hits += [_Hit(f.start, f.end, f.key, f.kind) for f in self._extra.find_regex(text)]
        hits = [h for h in hits if not self._extra.allowed(
            text, self._rules[h.key].category, h.start, h.end)]
        # -- end extra rules -------------------------------------------------------------------
        if not hits:
            return []
        self.stats.matches += len(hits)
        confident = transcript.confidence_class == "confident"
        pack = self.pack
        segment_id = transcript.segment.segment_id
        alerts: list[Alert] = []
        seen: dict[str, int] = {}
        for m in sorted(self._resolve(hits), key=lambda m: (m.start, m.end, m.key)):
            rule = self._rules[m.key]
            occurrence = seen.get(rule.id, 0)
            seen[rule.id] = occurrence + 1
            category = pack.categories[rule.category]
            suggestion: Suggestion = category.suggestion
            if not confident and _RANK[suggestion] > _RANK["review"]:
                suggestion = "review"
            alerts.append(Alert(
                alert_id=Alert.make_id(segment_id, rule.id, occurrence),
                transcript=transcript,
                category=rule.category,
                severity=category.severity,
                suggestion=suggestion,
                rule_id=rule.id,
                match=MatchSpan(m.start, m.end, text[m.start:m.end], m.kind),
                policy_hash=pack.sha256,
                policy_name=pack.name,
                policy_version=pack.version,
                transcript_ids=m.transcript_ids,
                score=span_probability(transcript, m.start, m.end),
            ))
        alerts.sort(key=lambda a: (a.match.start, a.category, a.rule_id))
        self.stats.alerts += len(alerts)
        return alerts

    def _cross_segment(self, transcript: Transcript) -> list[_Hit]:
        """Matches that start in the speaker's earlier segments and end in this one, with their
        span clipped to this transcript's text."""
        assert self.windows is not None
        previous = self.windows.previous(transcript)
        if not previous:
            return []
        text = transcript.text
        starts: list[int] = []
        offset = 0
        for entry in previous:
            starts.append(offset)
            offset += len(entry.text) + 1
        joined = "\n".join([e.text for e in previous] + [text])
        here = offset  # where this transcript's text begins in ``joined``
        out: list[_Hit] = []
        for f in self._index.find(joined):
            if not f.start < here < f.end:
                continue
            start = here
            while start < f.end and joined[start].isspace():
                start += 1
            ids = tuple(e.transcript_id for e, s in zip(previous, starts, strict=True)
                        if s + len(e.text) > f.start) + (transcript.transcript_id,)
            out.append(_Hit(start - here, f.end - here, f.key, "cross_segment", ids))
        return out

    def _resolve(self, matches: list[_Hit]) -> list[_Hit]:
        """Within each category, keep the longest of overlapping matches (ties: the more literal
        kind, earlier start, then earlier rule in the pack). Different categories never
        suppress each other. Cross-segment matches are as long as the whole phrase."""
        rules = self._rules
        by_category: dict[str, list[_Hit]] = {}
        for m in matches:
            by_category.setdefault(rules[m.key].category, []).append(m)
        kept: list[_Hit] = []
        for group in by_category.values():
            if len(group) == 1:
                kept.append(group[0])
                continue
            group.sort(key=lambda m: (-_length(m), KIND_RANK[m.kind], m.start, m.key))
            chosen: list[_Hit] = []
            for m in group:
                if all(m.end <= c.start or m.start >= c.end for c in chosen):
                    chosen.append(m)
            kept.extend(chosen)
        return kept


def _length(m: _Hit) -> int:
    """A match's length for overlap resolution; a cross-segment match counts the part said
    earlier too (approximated by a bonus, so it beats the fragment said here)."""
    return m.end - m.start + (10_000 if m.kind == "cross_segment" else 0)
