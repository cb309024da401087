"""Event types produced by the ingest stage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

SAMPLE_RATE = 16_000
"""Every PCM buffer past the decoder is 16 kHz, mono, signed 16-bit little endian."""

BYTES_PER_SAMPLE = 2


@dataclass(frozen=True, slots=True)
class PcmFrame:
    """A short run of 16 kHz mono s16le audio from one speaker's stream.

    Attributes:
        pcm: raw samples, 16 kHz mono s16le.
        offset_s: where the frame starts, in seconds since the stream began (sample-accurate).
        wall_time: Unix time at which the frame's first sample was spoken (best estimate).
        monotonic: ``time.monotonic()`` at which the frame was received; used for latency.
    """

    pcm: bytes
    offset_s: float
    wall_time: float
    monotonic: float

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / (BYTES_PER_SAMPLE * SAMPLE_RATE)


MAX_DISPLAY_NAME = 128


def clean_display_name(name: object) -> str:
    """A participant-chosen display name made safe to carry: text only, no control characters,
    whitespace collapsed, at most :data:`MAX_DISPLAY_NAME` characters."""
    if not isinstance(name, str):
        return ""
    printable = "".join(ch if ch.isprintable() else " " for ch in name)
    return " ".join(printable.split())[:MAX_DISPLAY_NAME]


@dataclass(frozen=True, slots=True)
class SpeechSegment:
    """One utterance of one speaker, cut out by VAD.

    Attributes:
        room_id: the room the speaker is in.
        speaker_id: the speaker (WHIP path element, file stem, or media-server participant).
        segment_id: deterministic id of this speech: same room, speaker, offset and audio give the
            same id, so replays and re-processing dedupe downstream.
        seq: 0-based index of the segment within its stream.
        pcm: the speech, 16 kHz mono s16le, including VAD padding.
        start_offset_s / end_offset_s: segment bounds in seconds since the speaker's stream began.
        start_time / end_time: the same bounds as Unix wall-clock time.
        end_monotonic: ``time.monotonic()`` when the last voiced frame arrived -- the "end of
            speech" instant that end-to-end latency is measured from.
        forced_split: True when the segment was cut at the maximum length, not by silence.
        stream_id: id of the stream (WHIP session / file) the speech came from.
        speaker_name: the speaker's display name where the source has one (a Janus participant's
            ``display``), captured when the segment closed -- looking it up later fails once the
            participant has left. User-controlled text: :func:`clean_display_name` bounds it.
            Not part of ``segment_id``.
    """

    room_id: str
    speaker_id: str
    segment_id: str
    seq: int
    pcm: bytes = field(repr=False)
    start_offset_s: float
    end_offset_s: float
    start_time: float
    end_time: float
    end_monotonic: float
    forced_split: bool = False
    stream_id: str = ""
    speaker_name: str = ""

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / (BYTES_PER_SAMPLE * SAMPLE_RATE)

    @staticmethod
    def make_id(room_id: str, speaker_id: str, start_offset_s: float, pcm: bytes) -> str:
        """Content-derived id: the same speech always gets the same id."""
        h = hashlib.blake2b(digest_size=16)
        for part in (room_id, speaker_id, f"{start_offset_s:.3f}"):
            h.update(part.encode())
            h.update(b"\0")
        h.update(pcm)
        return h.hexdigest()


@dataclass(frozen=True, slots=True)
class StreamGap:
    """A stretch of time during which a source could not hear a room (or one speaker in it).

    Moderation was blind there: downstream consumers must not read "no alert" as "nothing was
    said". Emitted by live sources once the gap is over (its end is known).

    Attributes:
        room_id: the room affected.
        speaker_id: the speaker affected; ``""`` when the whole room (or source) was lost.
        start_time / end_time: Unix wall-clock bounds of the gap (best estimates: when the last
            evidence of media was seen, and when the source was hearing again or gave up).
        reason: short stable label, e.g. ``janus_unreachable``, ``session_lost``,
            ``track_died``.
        source: which ingest source lost it, e.g. ``janus``.
    """

    room_id: str
    speaker_id: str
    start_time: float
    end_time: float
    reason: str
    source: str

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_time - self.start_time)

    @property
    def gap_id(self) -> str:
        """Deterministic id: the same gap (room, speaker, source, reason, start to the ms)
        always gets the same id, so a re-sent gap dedupes downstream."""
        h = hashlib.blake2b(digest_size=16)
        for part in (self.room_id, self.speaker_id, self.source, self.reason,
                     f"{self.start_time:.3f}"):
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()
