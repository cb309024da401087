"""Who was talking when: attribute segments cut from a mixed (room) stream to one speaker.

A mixed stream has one segmenter, so every segment leaves :class:`ingest.vad.SpeechSegmenter`
with the same placeholder speaker. The media server knows more: Janus's AudioBridge announces
``talking`` / ``stopped-talking`` per participant. :class:`TalkingTimeline` records those
announcements as intervals on the local wall clock (the clock ``read_pcm`` stamps
``start_time``/``end_time`` with), and :func:`attribute` rewrites a finished segment with
``dataclasses.replace``: the participant who talked for most of it (see
:meth:`TalkingTimeline.speaker_for`), else the placeholder. The
segmenter stays pure and source-agnostic; attribution is a post-processing step of the source.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ingest.frames import SpeechSegment

MIX_SPEAKER = "room"
"""speaker_id of speech no single participant can be credited with."""


@dataclass
class TalkingTimeline:
    """Talking intervals per participant, on the local wall clock (``time.time()``).

    Attributes:
        lag_s: how much later than the audio the announcements arrive. Janus decides "talking"
            once per ``audio_active_packets`` window (averaging the RFC 6464 levels the sender
            put in its RTP packets), so an announcement trails the speech by up to one window,
            while the mixed audio itself trails it only by the mixer's ~20-60 ms. Intervals are
            moved back by this much before they are compared with segments.
        keep_s: intervals that ended longer ago than this are forgotten (bounded memory).
    """

    lag_s: float = 0.25
    keep_s: float = 120.0
    _closed: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    _open: dict[str, float] = field(default_factory=dict)

    def started(self, speaker: str, at: float) -> None:
        """``speaker`` began talking (announcement received at wall time ``at``)."""
        self._open.setdefault(speaker, at - self.lag_s)

    def stopped(self, speaker: str, at: float) -> None:
        """``speaker`` stopped talking (or left) at wall time ``at``; no-op if not talking."""
        begin = self._open.pop(speaker, None)
        if begin is not None:
            self._closed.setdefault(speaker, []).append((begin, max(begin, at - self.lag_s)))
            self._prune(at)

    def talking(self) -> list[str]:
        """Participants talking right now."""
        return list(self._open)

    def shares(self, start: float, end: float) -> dict[str, float]:
        """Seconds each participant talked within ``[start, end]`` (open intervals run to end)."""
        out: dict[str, float] = {}
        for speaker, spans in self._closed.items():
            for a, b in spans:
                out[speaker] = out.get(speaker, 0.0) + max(0.0, min(b, end) - max(a, start))
        for speaker, a in self._open.items():
            out[speaker] = out.get(speaker, 0.0) + max(0.0, end - max(a, start))
        return {s: v for s, v in out.items() if v > 0.0}

    def speaker_for(self, start: float, end: float, min_share: float = 0.3) -> str | None:
        """Who talked most during ``[start, end]``, if they talked ``min_share`` of it at all.

        "Most" is the largest talking time among participants, not "more than half of the
        segment": the segment carries VAD padding and Janus decides per window (0.5-2 s), so a
        pause inside one utterance can show up as a gap and a sole talker can be announced for
        under half of their own segment. A tie (overlapping speakers) is nobody's.
        """
        if end <= start:
            return None
        ranked = sorted(self.shares(start, end).items(), key=lambda kv: kv[1], reverse=True)
        if not ranked or ranked[0][1] < min_share * (end - start):
            return None
        if len(ranked) > 1 and ranked[1][1] >= ranked[0][1]:
            return None
        return ranked[0][0]

    def _prune(self, now: float) -> None:
        horizon = now - self.keep_s
        for speaker in list(self._closed):
            spans = [s for s in self._closed[speaker] if s[1] >= horizon]
            if spans:
                self._closed[speaker] = spans
            else:
                del self._closed[speaker]


def attribute(segment: SpeechSegment, timeline: TalkingTimeline, names: dict[str, str], *,
              min_share: float = 0.3) -> SpeechSegment:
    """``segment`` credited to whoever talked most of it (see :class:`TalkingTimeline`).

    The speaker id becomes the participant's id and ``speaker_name`` its display name from
    ``names``; with no clear talker, :data:`MIX_SPEAKER` and no name. ``segment_id`` is derived
    again, as it hashes the speaker (see :meth:`SpeechSegment.make_id`).
    """
    speaker = timeline.speaker_for(segment.start_time, segment.end_time, min_share)
    speaker_id = speaker if speaker is not None else MIX_SPEAKER
    name = names.get(speaker_id, "") if speaker is not None else ""
    if (speaker_id, name) == (segment.speaker_id, segment.speaker_name):
        return segment
    return dataclasses.replace(
        segment, speaker_id=speaker_id, speaker_name=name,
        segment_id=SpeechSegment.make_id(segment.room_id, speaker_id, segment.start_offset_s,
                                         segment.pcm))
