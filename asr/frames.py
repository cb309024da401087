"""Event types produced by the ASR stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ingest.frames import SpeechSegment

ConfidenceClass = Literal["confident", "low", "rejected"]


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word; times are seconds since the speaker's stream began."""

    text: str
    start_offset_s: float
    end_offset_s: float
    probability: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said in one :class:`SpeechSegment`.

    Attributes:
        segment: the speech this transcript rests on (carries room, speaker, times, audio).
        transcript_id: deterministic: derived from the segment id and the model id.
        text: the recognised text (empty when the guards rejected everything).
        language: ISO 639-1 code the model decoded in.
        words: word-level timings.
        confidence: mean word probability in [0, 1].
        confidence_class: ``confident`` (policy may act automatically), ``low`` (review only) or
            ``rejected`` (guards decided this is not speech / an invented phrase).
        model_id: which model produced it, e.g. ``tiny.en@1a5afae06a4d``.
        asr_seconds: wall time spent decoding.
        queued_seconds: time the segment waited before decoding started.
        no_speech_prob / avg_logprob / compression_ratio: Whisper's own quality signals (worst
            over the decoded sub-segments).
        guard_reasons: why the hallucination guards lowered or rejected the text, if they did.
        batch_size: how many segments were decoded together in this one's Whisper window
            (cross-speaker packing; 1 = alone).
    """

    segment: SpeechSegment = field(repr=False)
    transcript_id: str
    text: str
    language: str
    words: tuple[Word, ...]
    confidence: float
    confidence_class: ConfidenceClass
    model_id: str
    asr_seconds: float
    queued_seconds: float = 0.0
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    guard_reasons: tuple[str, ...] = ()
    batch_size: int = 1

    @property
    def room_id(self) -> str:
        return self.segment.room_id

    @property
    def speaker_id(self) -> str:
        return self.segment.speaker_id
