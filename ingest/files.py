"""Audio files as a source: decode anything PyAV reads into PcmFrames and speech segments."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import av

from ingest.errors import IngestError
from ingest.frames import BYTES_PER_SAMPLE, SAMPLE_RATE, PcmFrame, SpeechSegment
from ingest.track import _pcm_bytes, _resampler
from ingest.vad import SpeechSegmenter, VadParams

# Yield to the event loop after this many frames: at 0.5 s a frame that is every ~4 s of audio,
# well under a millisecond of work, so other tasks (WHIP sessions, ASR hand-off) keep running.
_FRAMES_PER_YIELD = 8


def read_pcm_file(
    path: str | os.PathLike[str], chunk_s: float = 0.5, *, base_time: float | None = None
) -> Iterator[PcmFrame]:
    """Decode an audio file into 16 kHz mono s16le frames of ``chunk_s`` seconds (the last shorter).

    The file is opened here, so a missing or unreadable file fails at the call, not at the first
    ``next()``. Only the first audio stream is read.

    Args:
        path: any file PyAV/FFmpeg can demux and decode (wav, flac, ogg/opus, mp3, m4a, ...).
        chunk_s: length of each yielded frame.
        base_time: Unix time of the file's first sample; ``wall_time`` is this plus the offset.
            Default: ``time.time()`` at the call.

    Raises:
        IngestError: the file is missing, not media, or has no audio stream; also raised from
            iteration if decoding fails part-way. The message names the file.
    """
    if chunk_s <= 0:
        raise ValueError(f"chunk_s must be > 0, got {chunk_s}")
    name = os.fspath(path)
    base = time.time() if base_time is None else base_time
    try:
        container = av.open(name, mode="r")
    except (OSError, av.FFmpegError) as exc:  # av.error.* subclass both
        raise IngestError(f"cannot read audio file {name}: {_reason(exc)}") from exc
    if not container.streams.audio:
        container.close()
        raise IngestError(f"cannot read audio file {name}: it has no audio stream")
    return _frames(container, name, chunk_s, base)


def _frames(
    container: av.container.InputContainer, name: str, chunk_s: float, base: float
) -> Iterator[PcmFrame]:
    chunk_bytes = max(1, round(chunk_s * SAMPLE_RATE)) * BYTES_PER_SAMPLE
    resampler = _resampler()
    buf = bytearray()
    samples = 0

    def make(pcm: bytes) -> PcmFrame:
        nonlocal samples
        offset = samples / SAMPLE_RATE
        samples += len(pcm) // BYTES_PER_SAMPLE
        return PcmFrame(pcm=pcm, offset_s=offset, wall_time=base + offset,
                        monotonic=time.monotonic())

    try:
        stream = container.streams.audio[0]
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    buf += _pcm_bytes(out)
                while len(buf) >= chunk_bytes:
                    yield make(bytes(buf[:chunk_bytes]))
                    del buf[:chunk_bytes]
            for out in resampler.resample(None):
                buf += _pcm_bytes(out)
        except (OSError, av.FFmpegError, ValueError) as exc:
            raise IngestError(f"cannot decode audio file {name}: {_reason(exc)}") from exc
        while buf:
            yield make(bytes(buf[:chunk_bytes]))
            del buf[:chunk_bytes]
    finally:
        container.close()


async def file_segments(
    path: str | os.PathLike[str],
    room_id: str,
    speaker_id: str,
    params: VadParams | None = None,
    *,
    stream_id: str | None = None,
) -> AsyncIterator[SpeechSegment]:
    """Segment a whole file as fast as it decodes, yielding speech segments in order.

    Decoding and VAD run on the event loop (both are far faster than real time, and the loop is
    yielded every few frames), so this is for files, not for sources that can block.

    Args:
        path: the audio file.
        room_id: room to stamp on the segments.
        speaker_id: speaker to stamp on the segments.
        params: VAD tuning (defaults: :class:`VadParams`).
        stream_id: stream id for the segments; default ``file:<file name>``.

    Raises:
        IngestError: the file cannot be read or decoded.
    """
    sid = stream_id if stream_id is not None else f"file:{Path(path).name}"
    segmenter = SpeechSegmenter(room_id, speaker_id, sid, params or VadParams())
    for i, frame in enumerate(read_pcm_file(path)):
        for seg in segmenter.push(frame):
            yield seg
        if i % _FRAMES_PER_YIELD == _FRAMES_PER_YIELD - 1:
            await asyncio.sleep(0)
    for seg in segmenter.flush():
        yield seg


def _reason(exc: BaseException) -> str:
    """FFmpeg's own message without the path PyAV appends (we name the file ourselves)."""
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return str(exc.strerror)
    if isinstance(exc, OSError) and exc.strerror:
        return str(exc.strerror)
    return str(exc) or type(exc).__name__
