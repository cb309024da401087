"""Test doubles for the ASR seam, reusable by any stage's tests.

``FakeRecognizer`` satisfies :class:`asr.recognizer.SpeechRecognizer` with scripted text, so
policy/alerts/runner tests need neither the model nor real speech. ``make_segment`` builds a
valid :class:`ingest.frames.SpeechSegment` in one line.

Import as ``from tests.fakes_asr import FakeRecognizer, make_segment`` (tests run from the repo
root with ``python -m pytest``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

from asr.frames import ConfidenceClass, Transcript, Word
from asr.recognizer import transcript_id
from ingest.frames import BYTES_PER_SAMPLE, SAMPLE_RATE, SpeechSegment

__all__ = ["FakeRecognizer", "ScriptLine", "make_segment"]

ScriptLine: TypeAlias = str | tuple[str, float]
"""Text to return, optionally with its confidence (mean word probability)."""


def make_segment(
    pcm: bytes | None = None,
    *,
    duration_s: float = 1.0,
    start_offset_s: float = 0.0,
    room_id: str = "room-1",
    speaker_id: str = "speaker-1",
    seq: int = 0,
    start_time: float = 1_700_000_000.0,
    stream_id: str = "stream-1",
) -> SpeechSegment:
    """A segment of ``pcm`` (default: ``duration_s`` of silence) with a content-derived id."""
    if pcm is None:
        pcm = bytes(int(duration_s * SAMPLE_RATE) * BYTES_PER_SAMPLE)
    duration = len(pcm) / (SAMPLE_RATE * BYTES_PER_SAMPLE)
    return SpeechSegment(
        room_id=room_id,
        speaker_id=speaker_id,
        segment_id=SpeechSegment.make_id(room_id, speaker_id, start_offset_s, pcm),
        seq=seq,
        pcm=pcm,
        start_offset_s=start_offset_s,
        end_offset_s=start_offset_s + duration,
        start_time=start_time + start_offset_s,
        end_time=start_time + start_offset_s + duration,
        end_monotonic=time.monotonic(),
        stream_id=stream_id,
    )


class FakeRecognizer:
    """A scripted recognizer.

    Args:
        script: what to "hear": a sequence (n-th call gets the n-th line; past the end, ""), a
            mapping from ``segment_id`` (or from ``seq`` as an int) to a line, or a callable
            ``segment -> line``. A line is text or ``(text, confidence)``.
        confidence: confidence of lines that do not carry their own.
        low_confidence_below: as ``AsrParams.low_confidence_below``: below it a transcript is
            ``low``. Empty text is ``rejected`` (reason ``empty_text``), like the real guards.
        delay_s: simulated decode time (``asyncio.sleep``, so the loop stays free).
        model_id: stamped on transcripts; part of the transcript id.

    Attributes:
        calls: segments received, in order.
    """

    def __init__(
        self,
        script: Sequence[ScriptLine]
        | Mapping[str | int, ScriptLine]
        | Callable[[SpeechSegment], ScriptLine] = (),
        *,
        confidence: float = 0.95,
        low_confidence_below: float = 0.5,
        delay_s: float = 0.0,
        model_id: str = "fake@000000000000",
        language: str = "en",
    ) -> None:
        self.script = script
        self.confidence = confidence
        self.low_confidence_below = low_confidence_below
        self.delay_s = delay_s
        self.model_id = model_id
        self.language = language
        self.calls: list[SpeechSegment] = []

    def _line(self, segment: SpeechSegment) -> ScriptLine:
        script = self.script
        if callable(script):
            return script(segment)
        if isinstance(script, Mapping):
            if segment.segment_id in script:
                return script[segment.segment_id]
            return script.get(segment.seq, "")
        index = len(self.calls) - 1
        return script[index] if index < len(script) else ""

    async def transcribe(self, segment: SpeechSegment) -> Transcript:
        self.calls.append(segment)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        line = self._line(segment)
        text, confidence = (line, self.confidence) if isinstance(line, str) else line
        text = text.strip()
        tokens = text.split()
        cls: ConfidenceClass
        reasons: tuple[str, ...] = ()
        if not tokens:
            cls, confidence, reasons = "rejected", 0.0, ("empty_text",)
        elif confidence < self.low_confidence_below:
            cls, reasons = "low", ("low_word_probability",)
        else:
            cls = "confident"
        # Spread the words evenly over the segment so word-timing consumers get sane offsets.
        step = segment.duration_s / max(len(tokens), 1)
        words = tuple(
            Word(tok, segment.start_offset_s + i * step, segment.start_offset_s + (i + 1) * step,
                 confidence)
            for i, tok in enumerate(tokens)
        )
        return Transcript(
            segment=segment,
            transcript_id=transcript_id(segment.segment_id, self.model_id),
            text=text,
            language=self.language,
            words=words,
            confidence=confidence,
            confidence_class=cls,
            model_id=self.model_id,
            asr_seconds=self.delay_s,
            queued_seconds=0.0,
            guard_reasons=reasons,
        )
