"""Pull PCM out of an aiortc audio track: 48 kHz decoded frames in, 16 kHz mono PcmFrames out."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Any, Protocol

import av
import structlog
from aiortc.mediastreams import MediaStreamError

from ingest.frames import SAMPLE_RATE, PcmFrame

log = structlog.get_logger(__name__)

MAX_GAP_FILL_S = 2.0
"""Timestamp gaps up to this long (lost packets, Opus DTX) are filled with silence so offsets stay
on the sender's timeline; longer jumps are treated as a timestamp discontinuity and not filled."""


class Clock(Protocol):
    """What :func:`read_pcm` needs of a clock; the :mod:`time` module is one."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class AudioTrack(Protocol):
    """What :func:`read_pcm` needs of a track: aiortc's ``MediaStreamTrack`` is one."""

    async def recv(self) -> Any: ...


def _resampler() -> av.AudioResampler:
    return av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)


async def read_pcm(track: AudioTrack, *, clock: Clock = time) -> AsyncIterator[PcmFrame]:
    """Yield the track's audio as 16 kHz mono s16le :class:`PcmFrame` objects.

    Offsets count output samples, so they are sample-accurate on the stream's own timeline;
    ``wall_time`` is the first frame's arrival wall time plus the offset (arrival is the best
    estimate of when the first sample was spoken), and ``monotonic`` is each frame's arrival.

    Ends when the track ends (``MediaStreamError``), after flushing the resampler's tail.

    Args:
        track: an aiortc audio track (``recv()`` returns ``av.AudioFrame``; any rate/layout).
        clock: source of ``time()`` and ``monotonic()``; injectable for tests.
    """
    resampler = _resampler()
    samples = 0  # 16 kHz samples yielded so far == offset of the next frame
    wall0: float | None = None
    next_pts: int | None = None  # where, in the input time base, the next frame should start
    arrival = clock.monotonic()

    def make(pcm: bytes) -> PcmFrame:
        nonlocal samples
        assert wall0 is not None
        offset = samples / SAMPLE_RATE
        samples += len(pcm) // 2
        return PcmFrame(pcm=pcm, offset_s=offset, wall_time=wall0 + offset, monotonic=arrival)

    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            break
        arrival = clock.monotonic()
        if wall0 is None:
            wall0 = clock.time()
        gap = _gap_samples(frame, next_pts)
        if gap > 0:
            # Keep the 16 kHz stream continuous: what the network lost is silence to the VAD.
            yield make(bytes(2 * gap))
        if frame.pts is not None and frame.time_base is not None:
            next_pts = frame.pts + round(frame.samples / frame.sample_rate / frame.time_base)
        for out in resampler.resample(frame):
            pcm = _pcm_bytes(out)
            if pcm:
                yield make(pcm)
    if wall0 is not None:
        # The resampler holds back a few ms of filter delay: flush them out.
        tail = b"".join(_pcm_bytes(out) for out in resampler.resample(None))
        if tail:
            yield make(tail)


def _gap_samples(frame: av.AudioFrame, next_pts: int | None) -> int:
    """16 kHz samples missing between the previous frame's end and this frame's start."""
    if next_pts is None or frame.pts is None or frame.time_base is None:
        return 0
    gap_s = float((frame.pts - next_pts) * Fraction(frame.time_base))
    if gap_s <= 0.5 / SAMPLE_RATE:
        return 0
    if gap_s > MAX_GAP_FILL_S:
        log.info("track_timestamp_jump", gap_s=round(gap_s, 3))
        return 0
    return round(gap_s * SAMPLE_RATE)


def _pcm_bytes(frame: av.AudioFrame) -> bytes:
    """The s16 mono samples of a resampled frame (plane 0 may carry alignment padding)."""
    return bytes(frame.planes[0])[: frame.samples * 2]
