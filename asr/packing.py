"""Cross-speaker packing: many short segments, one Whisper window.

Whisper's encoder always looks at a 30 s window. A 3 s utterance decoded alone pays for the other
27 s of padding: on this 2-core CPU the encoder is ~80 % of a tiny.en decode, and batching whole
windows through CTranslate2 does not help (measured 0.84x: the encoder's matrix products already
fill both cores at batch size 1). What does help is putting several utterances -- from different
speakers and rooms -- into one window, separated by silence, decoding that window once, and
splitting the words back by their timestamps. The model sees what it was trained on (30 s of
audio holding several utterances), and each segment is charged only for its own share.

Attribution is what a moderation system cannot get wrong, so the split is conservative:

* segments are separated by ``gap_s`` of digital silence (default 0.6 s, well above Whisper's
  usual ~0.1-0.3 s word-timestamp error), and a word inside one segment's audio is that
  segment's;
* a word reaching into two segments, or timed into the silence between them, cannot be
  attributed with certainty: the segments around it are decoded again, each on its own;
* so is a segment that got no words at all: Whisper sometimes stops before the end of a
  window (the last utterance would silently vanish), and VAD said it was speech;
* a segment whose share of the decode does not look like one person's utterance -- more words
  per second than anyone speaks, or a phrase that repeats itself back to back (Whisper, given
  similar utterances in one window, sometimes writes one of them twice) -- is decoded again
  on its own (:func:`implausible`); packing saves time only where it is safe;
* Whisper's per-window quality signals (no-speech probability, avg log-prob) are inherited by
  every segment the window's sub-segment touches -- a bad decode of a neighbour makes a segment
  reviewable, never more trusted; the compression ratio is recomputed on each segment's own text.

Pure functions over arrays and faster-whisper-shaped results, so they are tested without a model.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asr.guards import SubSegment, WordLike
from ingest.frames import SAMPLE_RATE, SpeechSegment

__all__ = [
    "DEFAULT_GAP_S",
    "DEFAULT_WINDOW_S",
    "Pack",
    "Piece",
    "PieceWord",
    "Placement",
    "build_pack",
    "implausible",
    "join_packs",
    "split_words",
    "take_pack",
]

DEFAULT_WINDOW_S = 28.0
"""Audio per packed window. Below Whisper's 30 s so the last segment's final words never fall
on the window edge (faster-whisper would then decode a second, nearly empty window)."""
DEFAULT_GAP_S = 0.6
"""Silence between packed segments: larger than Whisper's word-timestamp error, small enough to
fit ~8 three-second utterances in a window."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a segment sits in a packed window (seconds from the window's start)."""

    segment: SpeechSegment
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class Pack:
    """One window of audio holding several segments, separated by silence."""

    audio: np.ndarray
    placements: tuple[Placement, ...]

    @property
    def speech_s(self) -> float:
        return sum(p.end_s - p.start_s for p in self.placements)


@dataclass(frozen=True, slots=True)
class PieceWord:
    """A word re-timed to its own segment (faster-whisper ``Word`` shape)."""

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True, slots=True)
class Piece:
    """The part of one Whisper sub-segment that belongs to one packed segment (faster-whisper
    ``Segment`` shape, so :func:`asr.guards.judge` applies unchanged)."""

    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    words: tuple[PieceWord, ...]


def _seconds(segment: SpeechSegment) -> float:
    return segment.duration_s


def take_pack(pending: Sequence[SpeechSegment], *, window_s: float = DEFAULT_WINDOW_S,
              gap_s: float = DEFAULT_GAP_S) -> int:
    """How many of ``pending`` (oldest first) go into the next window.

    Arrival order is kept -- the oldest segment is always in the next window, so packing never
    starves anyone -- and at least one segment is taken even if it alone is longer than the
    window (the VAD caps segments at 15 s, so that only happens with unusual settings).
    """
    used = 0.0
    for n, segment in enumerate(pending):
        need = _seconds(segment) + (gap_s if n else 0.0)
        if n and used + need > window_s:
            return n
        used += need
    return len(pending)


def build_pack(segments: Sequence[SpeechSegment], audio: Sequence[np.ndarray], *,
               gap_s: float = DEFAULT_GAP_S) -> Pack:
    """Lay ``audio`` (float32, 16 kHz, one array per segment) end to end with ``gap_s`` of
    silence between them."""
    if len(segments) != len(audio) or not segments:
        raise ValueError("build_pack needs one audio array per segment, at least one")
    gap = int(round(gap_s * SAMPLE_RATE))
    total = sum(len(a) for a in audio) + gap * (len(audio) - 1)
    window = np.zeros(total, dtype=np.float32)
    placements = []
    cursor = 0
    for segment, samples in zip(segments, audio, strict=True):
        window[cursor:cursor + len(samples)] = samples
        placements.append(Placement(segment, cursor / SAMPLE_RATE,
                                    (cursor + len(samples)) / SAMPLE_RATE))
        cursor += len(samples) + gap
    return Pack(window, tuple(placements))


@dataclass(frozen=True, slots=True)
class JoinedPacks:
    """Several windows laid end to end for one batched decode.

    Attributes:
        audio: the windows, separated by silence that belongs to no window.
        clips: each window's ``{"start", "end"}`` in seconds (faster-whisper's
            ``clip_timestamps``): one Whisper window each, decoded as one batch.
        placements: every segment's placement, in seconds from the start of ``audio``.
    """

    audio: np.ndarray
    clips: tuple[dict[str, float], ...]
    placements: tuple[Placement, ...]


def join_packs(packs: Sequence[Pack], *, gap_s: float = DEFAULT_GAP_S) -> JoinedPacks:
    """Lay windows end to end so one batched call decodes them all; the silence between them
    keeps a word that overshoots its window's end nearer to its own segment."""
    gap = np.zeros(int(round(gap_s * SAMPLE_RATE)), dtype=np.float32)
    parts: list[np.ndarray] = []
    clips: list[dict[str, float]] = []
    placements: list[Placement] = []
    cursor = 0
    for pack in packs:
        if parts:
            parts.append(gap)
            cursor += len(gap)
        offset = cursor / SAMPLE_RATE
        clips.append({"start": offset, "end": (cursor + len(pack.audio)) / SAMPLE_RATE})
        placements += [Placement(p.segment, p.start_s + offset, p.end_s + offset)
                       for p in pack.placements]
        parts.append(pack.audio)
        cursor += len(pack.audio)
    return JoinedPacks(np.concatenate(parts), tuple(clips), tuple(placements))


def compression_ratio(text: str) -> float:
    """gzip-style compression ratio (Whisper's repetition signal; the same formula as
    faster-whisper's ``get_compression_ratio``)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _nearest(placements: Sequence[Placement], t: float) -> int:
    best, best_distance = 0, float("inf")
    for i, p in enumerate(placements):
        distance = 0.0 if p.start_s <= t <= p.end_s else min(abs(t - p.start_s),
                                                             abs(t - p.end_s))
        if distance < best_distance:
            best, best_distance = i, distance
    return best


def _touches(p: Placement, start: float, end: float) -> bool:
    return start < p.end_s and end > p.start_s


def _overlap(p: Placement, start: float, end: float) -> float:
    return min(end, p.end_s) - max(start, p.start_s)


def split_words(subsegments: Sequence[SubSegment],
                placements: Sequence[Placement]) -> tuple[list[list[Piece]], set[int]]:
    """Split a window's decode into per-segment pieces.

    A word inside one segment's audio belongs to it. A word reaching into two segments, or
    lying wholly in the silence between them (Whisper sometimes times an utterance's last word
    into the following silence, even as a zero-length word), goes to the nearest segment for
    now, but its neighbours are reported as ambiguous.

    Returns:
        ``pieces[i]``: the sub-segment pieces of placement ``i`` (words re-timed to that
        segment's start), and the indexes of placements whose words are uncertain.
    """
    pieces: list[list[Piece]] = [[] for _ in placements]
    ambiguous: set[int] = set()
    for sub in subsegments:
        owned: dict[int, list[PieceWord]] = {}
        for w in sub.words or ():
            touched = [j for j, p in enumerate(placements) if _touches(p, w.start, w.end)]
            if len(touched) == 1:
                i = touched[0]
            elif touched:
                i = max(touched, key=lambda j: _overlap(placements[j], w.start, w.end))
                ambiguous.update(touched)
            else:
                i = _nearest(placements, (w.start + w.end) / 2)
                ambiguous.update(j for j, p in enumerate(placements)
                                 if _distance(p, w.start, w.end) <= _NEIGHBOUR_S)
            owned.setdefault(i, []).append(_retime(w, placements[i]))
        for i, words in sorted(owned.items()):
            text = "".join(w.word for w in words)
            pieces[i].append(Piece(text=text, no_speech_prob=float(sub.no_speech_prob),
                                   avg_logprob=float(sub.avg_logprob),
                                   compression_ratio=compression_ratio(text.strip()),
                                   words=tuple(words)))
    return pieces, ambiguous


_NEIGHBOUR_S = 1.0
"""A word in the silence between segments makes every segment this close to it uncertain."""


def _distance(p: Placement, start: float, end: float) -> float:
    if _touches(p, start, end):
        return 0.0
    return min(abs(start - p.end_s), abs(p.start_s - end), abs(start - p.start_s))


def _retime(w: WordLike, p: Placement) -> PieceWord:
    return PieceWord(start=w.start - p.start_s, end=w.end - p.start_s, word=w.word,
                     probability=float(w.probability))


MAX_WORDS_PER_S = 5.0
"""Fast English speech is ~4 words/s; a packed segment credited with more was given a
neighbour's words."""
MAX_UNITS_PER_S_UNSPACED = 9.0
"""The same for languages written without spaces (Whisper's "words" there are characters or
short runs): fast Mandarin is ~7 characters/s."""
_UNSPACED = {"zh", "ja", "th", "lo", "my", "km", "yue", "bo"}


def _bare(word: str) -> str:
    return "".join(ch for ch in word.casefold() if ch.isalnum())


MAX_EDGE_SILENCE_S = 1.2
"""The VAD starts a segment 0.3 s before speech (pre-roll) and ends it 0.45 s after (hangover),
so a segment's words reach to within ~0.5 s of both ends. A packed decode whose words stop
more than this short of an end has lost words: batched decoding sometimes ends a window early
(sequential decoding would re-seek; a batch does not)."""


def implausible(pieces: Sequence[Piece], duration_s: float, language: str | None) -> str | None:
    """Why a packed segment's words cannot be trusted to be complete and its own, or None.

    ``too_many_words``: more words per second than a person says; ``repeated_phrase``: a run of
    three or more words immediately repeated; ``missing_head`` / ``missing_tail``: the words
    start or stop too far inside the speech (:data:`MAX_EDGE_SILENCE_S`).
    """
    timed = [w for p in pieces for w in p.words]
    if timed and min(w.start for w in timed) > MAX_EDGE_SILENCE_S:
        return "missing_head"
    if timed and duration_s - max(w.end for w in timed) > MAX_EDGE_SILENCE_S:
        return "missing_tail"
    words = [b for p in pieces for w in p.words if (b := _bare(w.word))]
    limit = MAX_UNITS_PER_S_UNSPACED if language in _UNSPACED else MAX_WORDS_PER_S
    if duration_s > 0 and len(words) / duration_s > limit:
        return "too_many_words"
    for n in range(3, len(words) // 2 + 1):
        for i in range(len(words) - 2 * n + 1):
            if words[i:i + n] == words[i + n:i + 2 * n]:
                return "repeated_phrase"
    return None
