"""The queue in front of ASR, and what it does when ASR cannot keep up.

A live room cannot be paused: if speech arrives faster than the recognizer transcribes it,
something must give. Blocking the producer would stall the WebRTC receivers (their frames pile
up in memory instead), and a queue without bound only postpones the failure. So the backlog is
bounded by segment count *and* by seconds of audio, and when a new segment would exceed either
bound the **oldest** waiting segment is shed:

* the oldest speech is the least useful -- its alert would already be late, while the newest is
  what a moderator can still act on;
* shedding is never silent: every shed segment is handed to ``on_shed``, which the pipeline
  turns into a ``StreamGap`` (reason ``asr_overload``) on the gaps topic and into
  ``roomwarden_gap_seconds_total``, so received seconds = transcribed + gap seconds, exactly.

Offline jobs (``roomwarden moderate`` over files) have no deadline, so there the backlog can
block the producer instead (``shed=False``) and nothing is shed.

Built on ``asyncio.Queue``'s documented extension points (``_init``/``_put``/``_get``, as
``PriorityQueue`` and ``LifoQueue`` do), so ``get``/``task_done``/``join`` behave as usual.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from ingest.frames import SpeechSegment, StreamGap

__all__ = ["SegmentBacklog", "unheard_gap"]


def unheard_gap(segment: SpeechSegment, reason: str) -> StreamGap:
    """The gap event for speech that was received but will never be transcribed (shed:
    ``asr_overload``; the recognizer or hand-off failed on it: ``asr_failed``...)."""
    return StreamGap(room_id=segment.room_id, speaker_id=segment.speaker_id,
                     start_time=segment.start_time, end_time=segment.end_time,
                     reason=reason, source="asr")


class SegmentBacklog(asyncio.Queue[SpeechSegment]):
    """Segments waiting for ASR, bounded by count and by seconds of audio.

    Args:
        max_segments: most segments waiting at once.
        max_audio_s: most seconds of speech waiting at once (only enforced when shedding).
        on_shed: called with each segment shed (oldest first), synchronously inside ``put``.
        on_received: called with each segment put (before any shedding it causes).
        shed: True (live): ``put`` never blocks; the oldest waiting segments are shed to make
            room. False (offline): ``put`` blocks while ``max_segments`` are waiting.

    Attributes:
        audio_s: seconds of speech waiting now.
        shed_count / shed_s: segments and seconds shed so far.
    """

    def __init__(self, *, max_segments: int, max_audio_s: float,
                 on_shed: Callable[[SpeechSegment], None] | None = None,
                 on_received: Callable[[SpeechSegment], None] | None = None,
                 shed: bool = True) -> None:
        if max_segments < 1:
            raise ValueError(f"max_segments must be >= 1, got {max_segments}")
        if max_audio_s <= 0:
            raise ValueError(f"max_audio_s must be > 0, got {max_audio_s}")
        self.max_segments = max_segments
        self.max_audio_s = max_audio_s
        self.shedding = shed
        self._on_shed = on_shed
        self._on_received = on_received
        self.shed_count = 0
        self.shed_s = 0.0
        # Shedding never lets the queue fill, so asyncio's own bound is only used when blocking.
        super().__init__(maxsize=0 if shed else max_segments)

    def _init(self, maxsize: int) -> None:
        self._queue: deque[SpeechSegment] = deque()
        self.audio_s = 0.0

    def _put(self, item: SpeechSegment) -> None:
        self._queue.append(item)
        self.audio_s += item.duration_s

    def _get(self) -> SpeechSegment:
        item = self._queue.popleft()
        self.audio_s -= item.duration_s
        if not self._queue:
            self.audio_s = 0.0  # no float drift while idle
        return item

    def put_nowait(self, item: SpeechSegment) -> None:
        if not self.shedding and self.full():
            raise asyncio.QueueFull  # before counting it: the caller still holds it
        if self._on_received is not None:
            self._on_received(item)
        if self.shedding:
            while self._queue and (len(self._queue) >= self.max_segments
                                   or self.audio_s + item.duration_s > self.max_audio_s):
                oldest = self._get()
                self.task_done()  # it was counted when put; it will never be got
                self.shed_count += 1
                self.shed_s += oldest.duration_s
                if self._on_shed is not None:
                    self._on_shed(oldest)
        super().put_nowait(item)
