"""Hallucination guards: decide how far a Whisper decode can be trusted.

Whisper invents text on silence, noise and at the end of audio ("Thanks for watching", loops of
one phrase). For moderation an invented phrase is a false accusation, so every decode is judged
here before it becomes a :class:`~asr.frames.Transcript`:

* a sub-segment Whisper itself considers silence (``no_speech_prob`` above the threshold AND
  ``avg_logprob`` below its threshold -- Whisper's own rule) is dropped: ``no_speech``;
* a sub-segment that is nothing but known invented phrases is dropped: ``invented_phrase``;
* nothing left but punctuation -> ``rejected`` (``empty_text`` when no other reason explains it);
* what is left is ``low`` (review only) when it loops (``repetition``: a sub-segment's gzip
  ratio above threshold, or a phrase said over and over, see :func:`loops`), decodes poorly
  (``low_avg_logprob``), is probably not speech by Whisper's own no-speech probability even
  though it decoded fluently (``high_no_speech_prob``), or the mean word probability is low
  (``low_word_probability``); otherwise ``confident``. So ``confident`` needs both of
  Whisper's signals to agree that this was speech, decoded well.

Reasons are reported even when the class stays ``confident`` (a dropped trailing "Thanks for
watching" next to real speech), so the audit record shows every edit the guards made.

Pure functions over faster-whisper's ``Segment``/``Word`` (or anything shaped like them), so the
rules are tested without a model.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from asr.frames import ConfidenceClass, Word
from asr.params import AsrParams

__all__ = ["LOOP_MIN_REPEATS", "LOOP_MIN_WORDS", "Judgement", "SubSegment", "WordLike",
           "is_invented", "judge", "loops"]


class WordLike(Protocol):
    """faster-whisper's ``Word``: times in seconds from the start of the decoded audio."""

    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...
    @property
    def word(self) -> str: ...
    @property
    def probability(self) -> float: ...


class SubSegment(Protocol):
    """faster-whisper's ``Segment``: one timestamped run of text within a decode."""

    @property
    def text(self) -> str: ...
    @property
    def no_speech_prob(self) -> float: ...
    @property
    def avg_logprob(self) -> float: ...
    @property
    def compression_ratio(self) -> float: ...
    @property
    def words(self) -> Sequence[WordLike] | None: ...


@dataclass(frozen=True, slots=True)
class Judgement:
    """The guarded result of one decode (the text-bearing fields of a ``Transcript``)."""

    text: str
    words: tuple[Word, ...]
    confidence: float
    confidence_class: ConfidenceClass
    guard_reasons: tuple[str, ...]
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    dropped_text: str = ""
    """Text the guards removed (for logs and debugging; never published as speech)."""


_NOT_WORD = re.compile(r"[\W_]+")


def _squash(text: str) -> str:
    # Case, punctuation and spacing vary between decodes of the same hallucination (and CJK text
    # has no spaces), so phrases are compared as bare runs of letters and digits.
    return _NOT_WORD.sub("", text.casefold())


@functools.lru_cache(maxsize=8)
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    squashed = sorted({_squash(p) for p in phrases} - {""}, key=len, reverse=True)
    if not squashed:
        return None
    return re.compile("(?:" + "|".join(re.escape(p) for p in squashed) + ")+")


def is_invented(text: str, phrases: Sequence[str]) -> bool:
    """True when ``text`` is nothing but (repetitions of) the given phrases.

    Text that merely contains a phrase ("thank you for coming") is not invented.
    """
    pattern = _phrase_pattern(tuple(phrases))
    squashed = _squash(text)
    return bool(pattern and squashed and pattern.fullmatch(squashed))


LOOP_MIN_REPEATS = 3
"""A phrase said this many times back to back is a decoding loop, however short the text."""
LOOP_MIN_WORDS = 4
"""...when the repeats total at least this many words, so "no no no" and "go go go" stay
speech. Why a second loop rule: Whisper's compression ratio cannot see loops in short text
(gzip's overhead keeps it under 2.4), and the multilingual base model, detecting the language
of ten seconds of synthesized chords, wrote "P.S.A.P." five times (ratio 2.20, avg_logprob
-0.43, no_speech 0.50, word probability 0.73: ``confident`` by every other rule), and of
fifteen seconds of a sine melody "I'm not sure if I can do it." three times (ratio 2.15).
None of the 57 real-speech segments measured (``../shared/evaldata/en_speech`` and the sample
room) has a repeat of either kind (``bench.nonspeech``)."""


def loops(text: str) -> bool:
    """True when some word or phrase of ``text`` repeats :data:`LOOP_MIN_REPEATS` or more times
    back to back, the repeats totalling at least :data:`LOOP_MIN_WORDS` words (case and
    punctuation ignored)."""
    words = [w for w in (_squash(t) for t in text.split()) if w]
    for n in range(1, len(words) // LOOP_MIN_REPEATS + 1):
        # A run of r positions where words[i] == words[i + n] is r + n words repeating with
        # period n: that many words hold (r + n) / n repeats of the phrase.
        need = max((LOOP_MIN_REPEATS - 1) * n, LOOP_MIN_WORDS - n)
        run = 0
        for i in range(len(words) - n):
            run = run + 1 if words[i] == words[i + n] else 0
            if run >= need:
                return True
    return False


def _has_content(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def judge(
    subsegments: Sequence[SubSegment],
    params: AsrParams,
    *,
    offset_s: float,
    duration_s: float,
) -> Judgement:
    """Apply the guards to one decode.

    Args:
        subsegments: everything Whisper decoded for the segment, in order.
        params: thresholds and the invented-phrase list; ``params.guards`` False keeps every
            sub-segment (classification by word probability and emptiness still applies).
        offset_s: start of the segment in the speaker's stream; word times are shifted by it.
        duration_s: length of the segment; word times are clamped into it (Whisper's word
            boundaries can overshoot the end of the audio by a few tens of ms).

    Returns:
        The text, words and class to publish, the reasons, and Whisper's quality signals (worst
        over all decoded sub-segments, dropped ones included: they are evidence too).
    """
    reasons: list[str] = []

    def flag(reason: str) -> None:
        if reason not in reasons:
            reasons.append(reason)

    kept: list[SubSegment] = []
    dropped: list[str] = []
    for sub in subsegments:
        if params.guards and (
            sub.no_speech_prob > params.no_speech_threshold
            and sub.avg_logprob < params.log_prob_threshold
        ):
            flag("no_speech")
            dropped.append(sub.text.strip())
        elif params.guards and is_invented(sub.text, params.invented_phrases):
            flag("invented_phrase")
            dropped.append(sub.text.strip())
        else:
            kept.append(sub)

    text = " ".join(t for t in (s.text.strip() for s in kept) if t)
    # A phrase can straddle two sub-segments ("Thanks for" / "watching."): check the whole too.
    if params.guards and is_invented(text, params.invented_phrases):
        flag("invented_phrase")
        dropped.append(text)
        kept, text = [], ""

    end_s = offset_s + duration_s
    words = tuple(
        Word(
            text=w.word.strip(),
            start_offset_s=min(max(offset_s + w.start, offset_s), end_s),
            end_offset_s=min(max(offset_s + w.end, offset_s), end_s),
            probability=float(w.probability),
        )
        for s in kept
        for w in (s.words or ())
        if _has_content(w.word)  # a bare "." is not a word anyone said
    )
    signals = _worst_signals(subsegments)

    if not _has_content(text):
        if not reasons:
            flag("empty_text")
        return Judgement("", (), 0.0, "rejected", tuple(reasons), *signals,
                         dropped_text=" ".join(d for d in dropped if d))

    confidence = sum(w.probability for w in words) / len(words) if words else 0.0
    lowering: list[str] = []
    if params.guards and (any(s.compression_ratio > params.compression_ratio_threshold
                              for s in kept) or loops(text)):
        lowering.append("repetition")
    if params.guards and any(s.avg_logprob < params.log_prob_threshold for s in kept):
        lowering.append("low_avg_logprob")
    # Whisper's rule above drops text only when both signals say "no speech". A decode it thinks
    # is probably not speech but writes fluently is the typical hallucination on tones and
    # noise (a 1 kHz beep written "F***!" at avg_logprob -0.56, word probability 0.9, when
    # packed with the beeps before it): never automatic action on that, review at most.
    # Threshold and its measurement: AsrParams.no_speech_threshold.
    if params.guards and any(s.no_speech_prob > params.no_speech_threshold for s in kept):
        lowering.append("high_no_speech_prob")
    if confidence < params.low_confidence_below:
        lowering.append("low_word_probability")
    for reason in lowering:
        flag(reason)
    return Judgement(
        text=text,
        words=words,
        confidence=confidence,
        confidence_class="low" if lowering else "confident",
        guard_reasons=tuple(reasons),
        no_speech_prob=signals[0],
        avg_logprob=signals[1],
        compression_ratio=signals[2],
        dropped_text=" ".join(d for d in dropped if d),
    )


def _worst_signals(subsegments: Sequence[SubSegment]) -> tuple[float, float, float]:
    """(highest no_speech_prob, lowest avg_logprob, highest compression_ratio); zeros if none."""
    if not subsegments:
        return 0.0, 0.0, 0.0
    return (
        max(float(s.no_speech_prob) for s in subsegments),
        min(float(s.avg_logprob) for s in subsegments),
        max(float(s.compression_ratio) for s in subsegments),
    )
