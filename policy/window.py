"""Per-speaker memory of the last few segments, so a phrase split across segments still matches.

VAD cuts speech at pauses, and a speaker who pauses mid-threat ("I will kill" ... "you") ends up
in two segments, neither of which matches alone. :class:`SpeakerWindows` keeps, per (room,
speaker), the last ``max_segments`` transcripts; the engine matches their texts joined with the
new one and keeps only matches that *end in the new segment and start before it* -- so a phrase
is reported once, on the segment that completes it, and never again when later segments arrive
(a match that lies inside earlier segments was already theirs).

Bounded memory: at most ``max_speakers`` speakers (least recently heard dropped first), each at
most ``max_segments`` entries; an entry is only joined when the silence between it and the next
segment is at most ``max_gap_s`` seconds of the speaker's stream (older speech is a different
sentence, so the gap doubles as the TTL).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from asr.frames import Transcript

__all__ = ["SpeakerWindows", "WindowEntry"]


@dataclass(frozen=True, slots=True)
class WindowEntry:
    """What is remembered of one earlier segment."""

    segment_id: str
    transcript_id: str
    text: str
    start_offset_s: float
    end_offset_s: float


class SpeakerWindows:
    """Recent segments per (room, speaker).

    Args:
        max_segments: earlier segments joined with a new one (default 2).
        max_gap_s: largest silence, in stream seconds, between joined segments (default 3.0:
            a breath or a hesitation, not a new topic).
        max_speakers: speakers remembered at once; the least recently heard is forgotten first.
    """

    def __init__(self, max_segments: int = 2, max_gap_s: float = 3.0,
                 max_speakers: int = 10_000) -> None:
        if max_segments < 1 or max_gap_s < 0 or max_speakers < 1:
            raise ValueError("max_segments and max_speakers must be >= 1, max_gap_s >= 0 (got "
                             f"{max_segments}, {max_speakers}, {max_gap_s})")
        self.max_segments = max_segments
        self.max_gap_s = max_gap_s
        self.max_speakers = max_speakers
        self._by_speaker: OrderedDict[tuple[str, str], deque[WindowEntry]] = OrderedDict()

    def __len__(self) -> int:
        """Speakers currently remembered."""
        return len(self._by_speaker)

    def previous(self, transcript: Transcript) -> tuple[WindowEntry, ...]:
        """The remembered segments that lead up to ``transcript`` (oldest first): each ends
        before the next one starts, with at most ``max_gap_s`` of silence in between. A replayed
        segment (same id) gets the same ones it got the first time; a segment heard out of
        order gets none from after it."""
        entries = self._by_speaker.get((transcript.room_id, transcript.speaker_id))
        if not entries:
            return ()
        seg = transcript.segment
        chain: list[WindowEntry] = []
        next_start = seg.start_offset_s
        for entry in reversed(entries):
            if entry.segment_id == seg.segment_id:
                continue  # a replay: what came before it still counts
            if entry.end_offset_s > next_start + 1e-6:
                break
            if next_start - entry.end_offset_s > self.max_gap_s:
                break
            chain.append(entry)
            next_start = entry.start_offset_s
        chain.reverse()
        return tuple(chain)

    def push(self, transcript: Transcript) -> None:
        """Remember ``transcript`` as its speaker's latest segment."""
        key = (transcript.room_id, transcript.speaker_id)
        entries = self._by_speaker.get(key)
        if entries is None:
            entries = deque(maxlen=self.max_segments)
            self._by_speaker[key] = entries
            if len(self._by_speaker) > self.max_speakers:
                self._by_speaker.popitem(last=False)
        else:
            self._by_speaker.move_to_end(key)
        seg = transcript.segment
        if any(e.segment_id == seg.segment_id for e in entries):
            return  # a replay: already remembered
        entries.append(WindowEntry(seg.segment_id, transcript.transcript_id, transcript.text,
                                   seg.start_offset_s, seg.end_offset_s))
