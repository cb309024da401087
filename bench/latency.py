"""End-of-speech -> alert-acked latency over real WebRTC, for 1 and N concurrent speakers.

Each simulated speaker publishes, over WHIP on 127.0.0.1, a stream made of the sample room's
flagged utterances (cut from the room's files by its script, 1.5 s apart), each speaker in a
room of its own, starts staggered by a fraction of a second. The pipeline runs as in
production: VAD, tiny.en int8, the default rule pack, the embedded Kafka-protocol broker with
acks=all.

Two latencies per alert:
- **script**: from the true end of the utterance (stream origin + the script's end time) to
  Kafka's ack -- what a user would feel;
- **metric**: from the arrival of the last voiced frame (``roomwarden_alert_latency_seconds``).

Baseline in the same run: the floor this design can reach for the same utterances -- the VAD
hangover plus decoding the segment on an idle recognizer. The ratio p50/floor shows what
transport, queueing and Kafka add, independent of how fast this machine happens to be.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.files import read_pcm_file
from ingest.whip_client import publish_file
from policy.frames import Alert
from roomwarden.app import running_pipeline, serving
from roomwarden.broker import LocalBroker
from roomwarden.sample_room import SampleRoom
from roomwarden.settings import Settings

GAP_S = 1.5
SR = 16_000


@dataclass(frozen=True)
class ScriptedStream:
    path: Path
    ends_s: tuple[float, ...]  # true end of each flagged utterance within the stream


def build_stream(room: SampleRoom, directory: Path) -> ScriptedStream:
    """Concatenate the room's flagged utterances into one speaker's WAV (16 kHz mono)."""
    pieces: list[np.ndarray] = [np.zeros(int(0.5 * SR), np.int16)]
    ends: list[float] = []
    t = 0.5
    for utt in room.expected:
        pcm = b"".join(f.pcm for f in read_pcm_file(room.speakers[utt.speaker]))
        audio = np.frombuffer(pcm, np.int16)
        clip = audio[int(utt.start_s * SR): int(utt.end_s * SR)]
        pieces.append(clip)
        t += len(clip) / SR
        ends.append(t)
        pieces.append(np.zeros(int(GAP_S * SR), np.int16))
        t += GAP_S
    path = directory / "flagged_stream.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(np.concatenate(pieces).tobytes())
    return ScriptedStream(path, tuple(ends))


@dataclass
class LatencyResult:
    speakers: int
    alerts: int
    expected: int
    script: list[float]
    metric: list[float]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(values, q))


async def run_scenario(settings: Settings, stream: ScriptedStream, speakers: int) -> LatencyResult:
    script: list[float] = []
    metric: list[float] = []
    count = 0

    def on_alert(alert: Alert, latency: float | None) -> None:
        nonlocal count
        count += 1
        seg = alert.transcript.segment
        origin = seg.end_monotonic - seg.end_offset_s  # arrival-based stream origin
        true_end = min((e for e in stream.ends_s if e <= seg.end_offset_s + 0.6),
                       key=lambda e: abs(e - seg.end_offset_s), default=seg.end_offset_s)
        script.append(time.monotonic() - (origin + true_end))
        if latency is not None:
            metric.append(latency)

    async with running_pipeline(settings, on_alert=on_alert) as running:
        async with serving(running, "127.0.0.1", 0) as url:

            async def one(i: int) -> None:
                await asyncio.sleep(0.37 * i)
                await publish_file(f"{url}/whip/bench-{speakers}-{i}/speaker", stream.path)

            await asyncio.gather(*(one(i) for i in range(speakers)))
    return LatencyResult(speakers, count, speakers * len(stream.ends_s), script, metric)


async def decode_floor(settings: Settings, stream: ScriptedStream) -> float:
    """Median time to decode one flagged utterance on an idle recognizer, plus the hangover."""
    from ingest.files import file_segments
    from roomwarden.app import build_recognizer, vad_params

    recognizer = build_recognizer(settings)
    await asyncio.to_thread(recognizer.warmup)
    times = []
    try:
        async for seg in file_segments(stream.path, "floor", "speaker", vad_params(settings)):
            t = await recognizer.transcribe(seg)
            times.append(t.asr_seconds)
    finally:
        recognizer.close()
    return statistics.median(times) + settings.vad.hangover_ms / 1000


async def bench_latency(room: SampleRoom, counts: tuple[int, ...]) -> tuple[float,
                                                                             list[LatencyResult]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        stream = build_stream(room, Path(tmp))
        async with LocalBroker() as broker:
            settings = Settings()
            settings.kafka.bootstrap_servers = broker.bootstrap_servers
            settings.webrtc.ice_host_addresses = ["127.0.0.1"]
            floor = await decode_floor(settings, stream)
            for n in counts:
                results.append(await run_scenario(settings, stream, n))
    return floor, results
