"""read_pcm against a fake aiortc track delivering 48 kHz stereo frames like the Opus decoder."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError

from ingest.frames import SAMPLE_RATE, PcmFrame
from ingest.track import read_pcm

RATE_IN = 48_000
FRAME = 960  # 20 ms, what aiortc's Opus decoder yields


def tone_frame(i: int, pts: int, freq: float = 440.0) -> av.AudioFrame:
    t = (np.arange(FRAME) + i * FRAME) / RATE_IN
    mono = (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    stereo = np.repeat(mono, 2).reshape(1, -1)  # packed s16: L R L R ...
    frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = RATE_IN, pts, Fraction(1, RATE_IN)
    return frame


class FakeTrack:
    def __init__(self, frames: list[av.AudioFrame], clock: FakeClock) -> None:
        self.frames, self.clock = list(frames), clock

    async def recv(self) -> av.AudioFrame:
        if not self.frames:
            raise MediaStreamError
        self.clock.now += 0.02
        return self.frames.pop(0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    def monotonic(self) -> float:
        return 500.0 + self.now


async def collect(track: FakeTrack, clock: FakeClock) -> list[PcmFrame]:
    return [f async for f in read_pcm(track, clock=clock)]


async def test_resamples_to_16k_mono_with_sample_accurate_offsets() -> None:
    clock = FakeClock()
    out = await collect(FakeTrack([tone_frame(i, i * FRAME) for i in range(50)], clock), clock)
    total = sum(len(f.pcm) // 2 for f in out)
    assert abs(total - 50 * FRAME // 3) <= 2  # 1 s in, 1 s out (resampler tail flushed)
    pos = 0
    for f in out:
        assert f.offset_s == pos / SAMPLE_RATE  # offsets count samples exactly
        assert f.wall_time == 1_700_000_000.02 + f.offset_s  # first arrival + offset
        pos += len(f.pcm) // 2
    # monotonic is the arrival of the input frame each output came from
    assert out[0].monotonic == 500.02 and out[-1].monotonic == 500.0 + 50 * 0.02
    samples = np.frombuffer(b"".join(f.pcm for f in out), dtype=np.int16)
    spectrum = np.abs(np.fft.rfft(samples[1000:1000 + SAMPLE_RATE // 2]))
    assert abs(np.argmax(spectrum) * 2 - 440) <= 4  # still a 440 Hz tone


async def test_lost_packets_become_silence_so_offsets_stay_on_the_timeline() -> None:
    clock = FakeClock()
    pts = [i * FRAME for i in range(10)] + [i * FRAME for i in range(15, 25)]  # 100 ms lost
    out = await collect(FakeTrack([tone_frame(i, p) for i, p in enumerate(pts)], clock), clock)
    total = sum(len(f.pcm) // 2 for f in out)
    assert abs(total - 25 * FRAME // 3) <= 2
    gap = [f for f in out if not any(f.pcm)]
    assert len(gap) == 1 and len(gap[0].pcm) // 2 == 5 * FRAME // 3


async def test_a_track_that_ends_at_once_yields_nothing() -> None:
    clock = FakeClock()
    assert await collect(FakeTrack([], clock), clock) == []
