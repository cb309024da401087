"""Voice activity segmentation: a stream of PcmFrames in, whole utterances out.

The segmenter is a pure, synchronous state machine over webrtcvad, so it can be unit tested with
recorded audio and driven by any source (WHIP track, file, media-server tap) at any pace.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import webrtcvad

from ingest.frames import BYTES_PER_SAMPLE, SAMPLE_RATE, PcmFrame, SpeechSegment

# A jump of more than this many samples between where the stream should continue and where a
# pushed frame says it starts is a discontinuity (not float rounding of the offset).
_CONTINUITY_TOLERANCE = 2


@dataclass(frozen=True, slots=True)
class VadParams:
    """Tuning of :class:`SpeechSegmenter`.

    Attributes:
        aggressiveness: webrtcvad mode 0-3; higher rejects more non-speech (and more quiet speech).
        frame_ms: VAD frame length; webrtcvad accepts only 10, 20 or 30 ms.
        pre_roll_ms: audio kept before the detected onset, so the first syllable is not clipped
            (onset detection needs a few voiced frames, by which time speech has begun).
        hangover_ms: non-speech that closes a segment. The main latency knob: a segment, hence
            an alert, cannot be emitted sooner than this after the end of speech.
        min_speech_ms: segments whose voiced span (first to last voiced frame) is shorter are
            dropped: clicks, coughs and door slams are not worth an ASR pass. The span is
            webrtcvad's, which smooths its decisions: 100 ms of speech reads as ~200 ms voiced.
        max_segment_s: a segment is force-split at this length so a speaker who never pauses
            does not hold alerts back indefinitely.
        start_ratio: fraction of voiced frames in the onset ring that opens a segment; a ring
            rather than one frame keeps single misclassified frames from opening segments.
        onset_window_ms: length of that onset ring.
        tail_ms: non-speech kept after the last voiced frame when a segment closes; enough for a
            trailing consonant without feeding the recogniser the whole hangover of silence (on
            which Whisper tends to invent text).
    """

    aggressiveness: int = 2
    frame_ms: int = 30
    pre_roll_ms: int = 300
    hangover_ms: int = 450
    min_speech_ms: int = 250
    max_segment_s: float = 15.0
    start_ratio: float = 0.6
    onset_window_ms: int = 150
    tail_ms: int = 150

    def __post_init__(self) -> None:
        if self.aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0-3, got {self.aggressiveness}")
        if self.frame_ms not in (10, 20, 30):
            raise ValueError(f"frame_ms must be 10, 20 or 30 (webrtcvad), got {self.frame_ms}")
        for name in ("pre_roll_ms", "hangover_ms", "min_speech_ms", "tail_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.hangover_ms < self.frame_ms:
            raise ValueError(f"hangover_ms must be >= frame_ms, got {self.hangover_ms}")
        if self.onset_window_ms < self.frame_ms:
            raise ValueError(f"onset_window_ms must be >= frame_ms, got {self.onset_window_ms}")
        if not 0.0 < self.start_ratio <= 1.0:
            raise ValueError(f"start_ratio must be in (0, 1], got {self.start_ratio}")
        if self.max_segment_s * 1000 < 2 * self.frame_ms:
            raise ValueError(f"max_segment_s is too short: {self.max_segment_s}")

    def frames(self, ms: float) -> int:
        """Number of VAD frames covering ``ms`` milliseconds (rounded up)."""
        return math.ceil(ms / self.frame_ms)


class _Chunk(NamedTuple):
    """One VAD frame: where it starts (in samples), its audio and what VAD said about it."""

    start: int
    pcm: bytes
    voiced: bool
    wall_time: float
    monotonic: float  # arrival of the PcmFrame holding the chunk's last sample


class SpeechSegmenter:
    """Cuts one speaker's audio stream into utterances.

    Feed it :class:`PcmFrame` objects of any length in stream order with :meth:`push`; it returns
    the segments that closed. Call :meth:`flush` at end of stream.

    Args:
        room_id: room of the speaker, copied into every segment.
        speaker_id: the speaker, copied into every segment.
        stream_id: the stream (WHIP session, file), copied into every segment.
        params: tuning; see :class:`VadParams`.
    """

    def __init__(
        self, room_id: str, speaker_id: str, stream_id: str = "", params: VadParams | None = None,
        speaker_name: str = "",
    ) -> None:
        self.room_id = room_id
        self.speaker_id = speaker_id
        self.stream_id = stream_id
        self.speaker_name = speaker_name
        """Display name stamped on segments as they close; the source may update it."""
        self.params = p = params or VadParams()
        self._vad = webrtcvad.Vad(p.aggressiveness)
        self._chunk_samples = SAMPLE_RATE * p.frame_ms // 1000
        self._chunk_bytes = self._chunk_samples * BYTES_PER_SAMPLE
        self._window = p.frames(p.onset_window_ms)
        self._start_voiced = math.ceil(p.start_ratio * self._window)
        self._pre_roll = p.frames(p.pre_roll_ms)
        self._hangover = p.frames(p.hangover_ms)
        self._tail = p.frames(p.tail_ms)
        self._min_speech = p.frames(p.min_speech_ms)
        self._max_chunks = max(2, round(p.max_segment_s * 1000 / p.frame_ms))
        self.seq = 0
        """Number of segments emitted so far (the next segment's ``seq``)."""
        self.chunks_seen = 0
        """VAD frames classified so far (a cheap counter for the composition root)."""
        # Re-chunking: bytes not yet classified, and where/when they start.
        self._pending = bytearray()
        self._pending_start: int | None = None
        self._pending_wall = 0.0
        # Idle: recent chunks, for onset detection and pre-roll.
        self._history: deque[_Chunk] = deque(maxlen=self._pre_roll + self._window)
        # Active: the open segment's chunks, indexes in it of the first/last voiced chunk.
        self._active = False
        self._segment: list[_Chunk] = []
        self._first_voiced: int | None = None
        self._last_voiced = 0
        self._continued = False  # the open segment continues one cut at max_segment_s

    @property
    def active(self) -> bool:
        """True while a segment is open (speech is going on or the hangover is running)."""
        return self._active

    def push(self, frame: PcmFrame) -> list[SpeechSegment]:
        """Add audio; returns the segments this audio closed (usually none).

        Raises:
            ValueError: the frame's PCM is not a whole number of 16-bit samples.
        """
        if len(frame.pcm) % BYTES_PER_SAMPLE:
            raise ValueError(
                f"PcmFrame.pcm must hold whole 16-bit samples (16 kHz mono s16le): got "
                f"{len(frame.pcm)} bytes, an odd count"
            )
        out: list[SpeechSegment] = []
        if not frame.pcm:
            return out
        start = round(frame.offset_s * SAMPLE_RATE)
        if self._pending_start is None:
            self._pending_start, self._pending_wall = start, frame.wall_time
        else:
            expected = self._pending_start + len(self._pending) // BYTES_PER_SAMPLE
            if abs(start - expected) > _CONTINUITY_TOLERANCE:
                # The audio is not contiguous (a source restarted or skipped): a segment cannot
                # span the jump, so close what is open and start over at the new position.
                out += self.flush()
                self._pending_start, self._pending_wall = start, frame.wall_time
            elif not self._pending:
                # Re-anchor wall time on each frame that starts a chunk: tracks source drift.
                self._pending_wall = frame.wall_time + (self._pending_start - start) / SAMPLE_RATE
        self._pending += frame.pcm
        n, nb = self._chunk_samples, self._chunk_bytes
        consumed = 0
        while len(self._pending) - consumed >= nb:
            pcm = bytes(self._pending[consumed:consumed + nb])
            consumed += nb
            chunk = _Chunk(self._pending_start, pcm, self._vad.is_speech(pcm, SAMPLE_RATE),
                           self._pending_wall, frame.monotonic)
            self._pending_start += n
            # Every later chunk starts inside this frame: derive its wall time from the frame.
            self._pending_wall = frame.wall_time + (self._pending_start - start) / SAMPLE_RATE
            seg = self._step(chunk)
            if seg is not None:
                out.append(seg)
        del self._pending[:consumed]
        return out

    def flush(self) -> list[SpeechSegment]:
        """End of stream: close the open segment, if any, and reset.

        An unclassified remainder shorter than one VAD frame is discarded.
        """
        out: list[SpeechSegment] = []
        if self._active:
            seg = self._close()
            if seg is not None:
                out.append(seg)
        self._pending.clear()
        self._pending_start = None
        self._history.clear()
        return out

    def _step(self, chunk: _Chunk) -> SpeechSegment | None:
        """Advance the state machine by one VAD frame."""
        self.chunks_seen += 1
        if not self._active:
            self._history.append(chunk)
            ring = list(self._history)[-self._window:]
            if sum(c.voiced for c in ring) < self._start_voiced:
                return None
            # Onset: start pre_roll before the first voiced chunk of the ring.
            hist = list(self._history)
            first = len(hist) - len(ring) + next(i for i, c in enumerate(ring) if c.voiced)
            begin = max(0, first - self._pre_roll)
            self._active, self._segment = True, hist[begin:]
            self._history.clear()
            self._first_voiced = first - begin
            self._last_voiced = max(i for i, c in enumerate(self._segment) if c.voiced)
            return None
        self._segment.append(chunk)
        idx = len(self._segment) - 1
        if chunk.voiced:
            self._last_voiced = idx
            if self._first_voiced is None:
                self._first_voiced = idx
        if idx - self._last_voiced >= self._hangover:
            return self._close()
        if len(self._segment) >= self._max_chunks:
            return self._split()
        return None

    def _close(self) -> SpeechSegment | None:
        """Close the open segment at the last voiced frame plus the tail; drop it if too short."""
        chunks, first, last = self._segment, self._first_voiced, self._last_voiced
        continued, self._continued = self._continued, False
        self._active, self._segment, self._first_voiced, self._last_voiced = False, [], None, 0
        end = max(0, min(len(chunks), last + 1 + self._tail))
        # Trailing silence past the tail goes back to history: it may be the next pre-roll.
        for c in chunks[max(end, len(chunks) - (self._history.maxlen or 0)):]:
            self._history.append(c)
        if first is None or last < first:
            return None
        # The end of a force-split utterance is kept however short: it is not a stray click.
        if not continued and last - first + 1 < self._min_speech:
            return None
        return self._emit(chunks[:end], chunks[last], forced=False)

    def _split(self) -> SpeechSegment | None:
        """Cut the open segment at max length and carry on in a new one at once."""
        chunks, first, last = self._segment, self._first_voiced, self._last_voiced
        # The continuation starts with no voiced frame of its own; the hangover keeps counting
        # from the last voiced frame before the cut (a negative index into the new segment).
        self._segment, self._first_voiced, self._continued = [], None, True
        self._last_voiced = last - len(chunks)
        if first is None:
            return None
        return self._emit(chunks, chunks[last], forced=True)

    def _emit(self, chunks: list[_Chunk], last_voiced: _Chunk, *, forced: bool) -> SpeechSegment:
        pcm = b"".join(c.pcm for c in chunks)
        start_s = chunks[0].start / SAMPLE_RATE
        seg = SpeechSegment(
            room_id=self.room_id,
            speaker_id=self.speaker_id,
            segment_id=SpeechSegment.make_id(self.room_id, self.speaker_id, start_s, pcm),
            seq=self.seq,
            pcm=pcm,
            start_offset_s=start_s,
            end_offset_s=(chunks[-1].start + self._chunk_samples) / SAMPLE_RATE,
            start_time=chunks[0].wall_time,
            end_time=chunks[-1].wall_time + self.params.frame_ms / 1000,
            end_monotonic=last_voiced.monotonic,
            forced_split=forced,
            stream_id=self.stream_id,
            speaker_name=self.speaker_name,
        )
        self.seq += 1
        return seg
