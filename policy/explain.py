"""The evidence score of an alert: how sure the recognizer was of the words a rule matched.

A rule match is only as good as the words under it: "idiot" heard at word probability 0.97 is
evidence; the same letters at 0.35 may be a mishearing of "it is". :func:`span_probability` is the
mean ASR word probability of the words that overlap the matched span, which the engine reports as
:attr:`policy.frames.Alert.score` (a classifier alert's score is the classifier's probability).

Words are located in the transcript text in order (``Transcript.words`` are the recognized words
with their probabilities, the text is them joined); when none can be located (a transcript built
by hand, without words), the transcript's own mean word probability stands in.
"""

from __future__ import annotations

from asr.frames import Transcript

__all__ = ["span_probability"]


def span_probability(transcript: Transcript, start: int, end: int) -> float:
    """Mean probability of the words of ``transcript`` overlapping ``text[start:end]``."""
    text = transcript.text
    total, count, pos = 0.0, 0, 0
    for word in transcript.words:
        if not word.text:
            continue
        at = text.find(word.text, pos)
        if at < 0:
            continue  # a word the text does not carry verbatim (e.g. converted script)
        pos = at + len(word.text)
        if at < end and start < pos:
            total += word.probability
            count += 1
        elif at >= end:
            break
    return total / count if count else transcript.confidence
