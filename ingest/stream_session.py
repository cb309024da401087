"""One incoming audio stream (a WHIP publisher, a Janus subscription): its peer connection,
segmenter, counters and audio pump."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiortc import RTCPeerConnection

from ingest.frames import SpeechSegment
from ingest.track import read_pcm
from ingest.vad import SpeechSegmenter

log = structlog.get_logger(__name__)

EventHook = Callable[[str, dict[str, Any]], None]
"""``(name, fields)`` callback of the composition root (see :class:`ingest.whip.WhipEndpoint`)."""

FRAMES_EVENT_S = 1.0
"""Audio seconds accumulated per ``frames`` event: bounds the hook's cost to ~1 call/s/stream."""


@dataclass(eq=False)
class StreamSession:
    """State of one speaker's stream; owned by the source that opened it (the WHIP endpoint or a
    Janus room tap)."""

    session_id: str
    room_id: str
    speaker_id: str
    pc: RTCPeerConnection
    segmenter: SpeechSegmenter
    started: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None
    watchdog: asyncio.TimerHandle | None = None
    audio_s: float = 0.0
    segments: int = 0
    connected: bool = False
    ending: bool = False

    def fields(self) -> dict[str, Any]:
        """Ids for logs and events."""
        return {"room_id": self.room_id, "speaker_id": self.speaker_id,
                "session_id": self.session_id}

    async def pump(self, track: Any, out: asyncio.Queue[SpeechSegment], emit: EventHook) -> str:
        """Read the track to its end through the segmenter onto ``out``; return why it stopped.

        Never raises but ``CancelledError``: a broken track or decoder ends this session only.
        Whatever way it ends, the open segment is flushed; on cancellation (the track never
        drained) only if the queue has room, since blocking there could hang shutdown.
        """
        reason, unreported = "track_ended", 0.0
        try:
            try:
                async for frame in read_pcm(track):
                    self.audio_s += frame.duration_s
                    unreported += frame.duration_s
                    if unreported >= FRAMES_EVENT_S:
                        emit("frames", {"seconds": unreported})
                        unreported = 0.0
                    for seg in self.segmenter.push(frame):
                        await out.put(seg)
                        self.segments += 1
            except Exception:
                log.exception("stream_track_failed", **self.fields())
                reason = "track_error"
            for seg in self.segmenter.flush():
                await out.put(seg)
                self.segments += 1
        except asyncio.CancelledError:
            for seg in self.segmenter.flush():
                try:
                    out.put_nowait(seg)
                    self.segments += 1
                except asyncio.QueueFull:
                    log.warning("stream_segment_dropped", **self.fields(), seq=seg.seq)
            raise
        except Exception:  # e.g. a broken segmenter: still end the session cleanly
            log.exception("stream_session_failed", **self.fields())
            reason = "error"
        finally:
            if unreported:
                emit("frames", {"seconds": unreported})
        return reason
