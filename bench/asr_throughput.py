"""ASR throughput: audio-seconds transcribed per CPU-second, over the sample room's segments.

RoomWarden's recognizer (tiny.en int8, greedy, guards, word timings) against the baseline of
faster-whisper's stock ``transcribe()`` with its defaults (beam 5, temperature fallback) on the
same model and the same VAD segments, in the same run. CPU time is the process's
(``time.process_time``: all threads), so the number is what one segment costs the machine.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from ingest.files import file_segments
from ingest.frames import SpeechSegment
from roomwarden.app import build_recognizer, vad_params
from roomwarden.sample_room import SampleRoom
from roomwarden.settings import Settings


@dataclass
class ThroughputResult:
    name: str
    audio_s: float
    cpu_s: float
    wall_s: float

    @property
    def per_cpu_s(self) -> float:
        return self.audio_s / self.cpu_s

    @property
    def realtime_factor(self) -> float:
        return self.audio_s / self.wall_s


async def _segments(room: SampleRoom, settings: Settings) -> list[SpeechSegment]:
    out = []
    for speaker, path in room.speakers.items():
        async for seg in file_segments(path, room.room_id, speaker, vad_params(settings)):
            out.append(seg)
    return out


async def bench_asr(room: SampleRoom) -> list[ThroughputResult]:
    settings = Settings()
    segments = await _segments(room, settings)
    audio_s = sum(s.duration_s for s in segments)
    recognizer = build_recognizer(settings)
    await asyncio.to_thread(recognizer.warmup)
    try:
        c0, w0 = time.process_time(), time.perf_counter()
        for seg in segments:
            await recognizer.transcribe(seg)
        ours = ThroughputResult("roomwarden recognizer", audio_s, time.process_time() - c0,
                                time.perf_counter() - w0)
        model = recognizer.model  # same loaded model: only the decoding settings differ

        def stock() -> None:
            for seg in segments:
                audio = np.frombuffer(seg.pcm, np.int16).astype(np.float32) / 32768.0
                list(model.transcribe(audio, language="en")[0])

        c0, w0 = time.process_time(), time.perf_counter()
        await asyncio.to_thread(stock)
        base = ThroughputResult("faster-whisper transcribe() defaults", audio_s,
                                time.process_time() - c0, time.perf_counter() - w0)
    finally:
        recognizer.close()
    return [base, ours]
