"""One incoming audio stream (a WHIP publisher, a Janus subscription): its peer connection,
segmenter, counters and audio pump."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver
from aiortc import sdp as aiortc_sdp

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
    last_frame_wall: float = 0.0
    """Unix time the last audio frame arrived (0 before the first): when the media stopped."""

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
                    self.last_frame_wall = time.time()
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

    async def end(self, reason: str, *, forget: Callable[[], None] | None = None,
                  flush_timeout_s: float = 5.0) -> dict[str, Any] | None:
        """Close the peer connection, let the reader flush its open segment, and stop it.

        Idempotent: returns None if the session was already ending; otherwise the fields for
        the source's ``*_ended`` log line and ``session_ended`` event (ids, ``reason``,
        ``audio_s``, ``segments``, ``duration_s``).

        Args:
            reason: why the session ends (logged, reported).
            forget: called synchronously once the session is marked ending, before anything is
                awaited -- where the owner drops it from its tables, so nothing finds a session
                that is half closed.
            flush_timeout_s: how long the reader may take to put its last segments on a full
                queue before it is cancelled.
        """
        if self.ending:
            return None
        self.ending = True
        if self.watchdog is not None:
            self.watchdog.cancel()
        if forget is not None:
            forget()
        try:
            # Closing the receiver ends the track after the frames already decoded, so the
            # reader drains them, flushes the segmenter and returns.
            await self.pc.close()
        except Exception:
            log.exception("stream_close_failed", **self.fields())
        task = self.task
        if task is not None and task is not asyncio.current_task():
            # A receiver that never started never ends its track: nothing to drain then.
            done, _ = await asyncio.wait({task}, timeout=flush_timeout_s if self.connected else 0)
            if not done:
                if self.connected:  # the output queue stayed full
                    log.warning("stream_flush_timeout", **self.fields())
                task.cancel()
                await asyncio.wait({task})
        return {**self.fields(), "reason": reason, "audio_s": round(self.audio_s, 3),
                "segments": self.segments,
                "duration_s": round(time.monotonic() - self.started, 3)}


def prepare_audio_transceivers(
        pc: RTCPeerConnection,
        offer: str | aiortc_sdp.SessionDescription) -> RTCRtpTransceiver | None:
    """Pre-create one transceiver per m-line of ``offer``, in order (aiortc matches them by kind).

    The first audio m-line receives Opus only; every other audio/video m-line is answered
    inactive, so its media is neither sent nor decoded (a publisher's video would otherwise cost
    a decoder). Returns the audio transceiver, or None if the offer has no audio.
    """
    parsed = aiortc_sdp.SessionDescription.parse(offer) if isinstance(offer, str) else offer
    audio = None
    for media in parsed.media:
        if media.kind == "audio" and audio is None:
            audio = pc.addTransceiver("audio", direction="recvonly")
            caps = RTCRtpReceiver.getCapabilities("audio")
            audio.setCodecPreferences([c for c in (caps.codecs if caps else [])
                                       if c.mimeType.lower() == "audio/opus"])
        elif media.kind in ("audio", "video"):
            pc.addTransceiver(media.kind, direction="inactive")
    return audio
