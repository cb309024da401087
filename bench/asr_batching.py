"""Cross-speaker packing at 16 concurrent speakers, against one-at-a-time ``transcribe()``.

Two measurements, both in one run on one loaded model (tiny.en int8 unless told otherwise):

1. **Throughput.** The same utterances, from 16 speakers, transcribed three ways:
   stock faster-whisper ``transcribe()`` one at a time with RoomWarden's decoding settings
   (the baseline the issue names), RoomWarden's recognizer with packing off, and with packing
   on -- each round hands the recognizer one utterance from every speaker at once, as 16 people
   finishing sentences around the same time would. Reported: audio seconds per CPU second
   (``time.process_time``: all threads of this process) and the word error rate against the
   references, so speed is never bought with accuracy unseen.
   Speech: real English recordings with human references from ``../shared/evaldata`` (read
   there at run time, never copied), cut into segments by the pipeline's own VAD, and the
   sample room's utterances (shorter, like chat).
2. **Live.** 16 speakers talking in real time (utterance, 0.4 s pause, next utterance) for
   ``--live-s`` seconds through the real pipeline (backlog, shedding, recognizer, default rule
   pack; records to an in-memory sink): with packing on and off. Reported: seconds received,
   transcribed and shed (as ``asr_overload`` gaps), and end-of-speech -> transcript latency.

    python -m bench.asr_batching [--speakers 16] [--live-s 60] [--model tiny.en]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.frames import Transcript
from asr.params import AsrParams
from asr.recognizer import WhisperRecognizer, float32_to_pcm, pcm_to_float32
from bench.accuracy_metrics import error_rate, load_clips
from bench.asr_throughput import _segments
from ingest.frames import BYTES_PER_SAMPLE, SAMPLE_RATE, PcmFrame, SpeechSegment
from ingest.vad import SpeechSegmenter
from policy.engine import PolicyEngine
from policy.rules import RulePack, default_pack_path
from roomwarden.app import vad_params
from roomwarden.metrics import Metrics
from roomwarden.runner import Pipeline
from roomwarden.sample_room import load_sample_room
from roomwarden.settings import Settings

EVALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "evaldata"


@dataclass(frozen=True, slots=True)
class Utterance:
    """What one person said (the reference) and the VAD segments it was cut into."""

    segments: tuple[SpeechSegment, ...]
    reference: str

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.segments)


@dataclass
class ThroughputRow:
    corpus: str
    decoder: str
    utterances: int
    audio_s: float
    cpu_s: float
    wall_s: float
    wer: float
    mean_batch: float = 1.0

    @property
    def per_cpu_s(self) -> float:
        return self.audio_s / self.cpu_s


@dataclass
class LiveRow:
    mode: str
    received_s: float
    transcribed_s: float
    shed_s: float
    latencies: list[float]
    mean_batch: float


def _as_speaker(segment: SpeechSegment, speaker: int, seq: int) -> SpeechSegment:
    """The same audio said by speaker ``speaker`` (its own ids, so nothing is deduplicated)."""
    sid = f"speaker-{speaker:02d}"
    return dataclasses.replace(
        segment, room_id="bench", speaker_id=sid, seq=seq,
        segment_id=SpeechSegment.make_id("bench", sid, float(seq), segment.pcm),
        end_monotonic=time.monotonic())


def _vad_cut(audio: np.ndarray, name: str) -> tuple[SpeechSegment, ...]:
    """Cut a recording the way the pipeline does: 0.5 s frames through the VAD segmenter."""
    pcm = float32_to_pcm(audio)
    segmenter = SpeechSegmenter("bench", name, name, vad_params(Settings()))
    step = SAMPLE_RATE // 2 * BYTES_PER_SAMPLE
    out: list[SpeechSegment] = []
    for at in range(0, len(pcm), step):
        out += segmenter.push(PcmFrame(pcm[at:at + step], at / BYTES_PER_SAMPLE / SAMPLE_RATE,
                                       0.0, time.monotonic()))
    return tuple(out + segmenter.flush())


def evaldata_utterances() -> list[Utterance]:
    """Real English recordings with human references, cut by the VAD like live speech."""
    from bench.accuracy import load_audio

    clips, _ = load_clips(EVALDATA, ["en"])
    out = []
    for clip in clips:
        segments = _vad_cut(load_audio(clip), clip.utt_id)
        if segments:
            out.append(Utterance(segments, clip.reference))
    return out


async def sample_room_utterances() -> list[Utterance]:
    room = load_sample_room()
    segments = await _segments(room, Settings())
    out = []
    for s in segments:  # the scripted line this segment holds: the nearest start, same speaker
        said = min((u for u in room.utterances if u.speaker == s.speaker_id),
                   key=lambda u: abs(u.start_s - s.start_offset_s))
        out.append(Utterance((s,), said.text))
    return out


def rounds(utterances: Sequence[Utterance], speakers: int) -> list[list[Utterance]]:
    """Deal the utterances to ``speakers`` speakers; round r = every speaker's r-th utterance."""
    out: list[list[Utterance]] = []
    for i, u in enumerate(utterances):
        if i % speakers == 0:
            out.append([])
        speaker, seq = i % speakers, (i // speakers) * 100
        out[-1].append(Utterance(tuple(_as_speaker(s, speaker, seq + k)
                                       for k, s in enumerate(u.segments)), u.reference))
    return out


def _segments_of(utterances: Sequence[Utterance]) -> list[SpeechSegment]:
    return [s for u in utterances for s in u.segments]


def _wer(utterances: Sequence[Utterance], texts: Sequence[str]) -> float:
    """WER of the utterances, given one text per segment (joined per utterance)."""
    joined, at = [], 0
    for u in utterances:
        joined.append(" ".join(texts[at:at + len(u.segments)]))
        at += len(u.segments)
    return error_rate("en", [u.reference for u in utterances], joined)


async def throughput(corpus: str, utterances: list[Utterance], speakers: int,
                     recognizer: WhisperRecognizer) -> list[ThroughputRow]:
    grouped = rounds(utterances, speakers)
    flat = [u for r in grouped for u in r]
    segments = _segments_of(flat)
    audio_s = sum(s.duration_s for s in segments)
    rows = []

    # Baseline: stock transcribe(), one utterance at a time, RoomWarden's decoding settings.
    model, p = recognizer.model, recognizer.params
    c0, w0 = time.process_time(), time.perf_counter()
    texts = []
    for segment in segments:
        subs, _ = model.transcribe(pcm_to_float32(segment.pcm), language="en",
                                   beam_size=p.beam_size, temperature=list(p.temperatures),
                                   condition_on_previous_text=False, word_timestamps=True,
                                   vad_filter=False)
        texts.append(" ".join(s.text.strip() for s in subs))
    rows.append(ThroughputRow(corpus, "transcribe(), one at a time", len(segments), audio_s,
                              time.process_time() - c0, time.perf_counter() - w0,
                              _wer(flat, texts)))

    for label, window in (("recognizer, packing off", 0.0), ("recognizer, packed", None)):
        recognizer.params = dataclasses.replace(
            p, pack_window_s=p.pack_window_s if window is None else window)
        c0, w0 = time.process_time(), time.perf_counter()
        results: list[Transcript] = []
        for r in grouped:
            if window == 0.0:
                results += [await recognizer.transcribe(s) for s in _segments_of(r)]
            else:
                results += await recognizer.transcribe_many(_segments_of(r))
        rows.append(ThroughputRow(corpus, label, len(segments), audio_s,
                                  time.process_time() - c0,
                                  time.perf_counter() - w0, _wer(flat, [t.text for t in results]),
                                  statistics.fmean(t.batch_size for t in results)))
    recognizer.params = p
    return rows


class _Sink:
    async def publish(self, record: object) -> asyncio.Future[object]:
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


async def live(utterances: list[Utterance], speakers: int, seconds: float,
               recognizer: WhisperRecognizer, packed: bool) -> LiveRow:
    p = recognizer.params
    recognizer.params = dataclasses.replace(p, pack_window_s=p.pack_window_s if packed else 0.0)
    latencies: list[float] = []
    batches: list[int] = []

    def on_transcript(t: Transcript) -> None:
        latencies.append(time.monotonic() - t.segment.end_monotonic)
        batches.append(t.batch_size)

    settings = Settings()
    pipeline = Pipeline(recognizer=recognizer,
                        policy=PolicyEngine(RulePack.load(default_pack_path())), sink=_Sink(),
                        metrics=Metrics(), source="/bench", on_transcript=on_transcript,
                        segment_queue=settings.pipeline.segment_queue,
                        segment_backlog_s=settings.pipeline.segment_backlog_s,
                        asr_in_flight=settings.pipeline.asr_in_flight)
    await pipeline.start()

    async def speaker(n: int) -> None:
        start = time.monotonic()
        i = n * 7  # speakers start at different utterances
        seq = 0
        await asyncio.sleep(n * 0.37 % 2.0)  # and not in lockstep
        while time.monotonic() - start < seconds:
            for segment in utterances[i % len(utterances)].segments:
                await asyncio.sleep(segment.duration_s)  # speaking...
                # ... done: the VAD hands the segment over
                pipeline.segments.put_nowait(_as_speaker(segment, n, seq))
                seq += 1
            await asyncio.sleep(0.4)
            i += 1

    await asyncio.gather(*(speaker(n) for n in range(speakers)))
    await pipeline.drain()
    await pipeline.stop()
    recognizer.params = p
    acc = pipeline.accounting
    return LiveRow("packed" if packed else "packing off", acc.received_s, acc.transcribed_s,
                   acc.shed_s, latencies, statistics.fmean(batches) if batches else 0.0)


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def render(model_id: str, speakers: int, rows: list[ThroughputRow], lives: list[LiveRow],
           live_s: float) -> str:
    lines = [f"## Cross-speaker packing at {speakers} concurrent speakers ({model_id})", "",
             "Throughput: the same utterances dealt to the speakers, transcribed one at a time "
             "and packed (each round = one utterance from every speaker, handed over together). "
             "CPU = this process, all threads. WER: lowercase, punctuation removed, against the "
             "human references.", "",
             "| speech | decoder | segments | audio s | CPU s | audio s per CPU s | "
             "vs transcribe() | mean batch | WER |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = {r.corpus: r for r in rows if r.decoder.startswith("transcribe()")}
    for r in rows:
        lines.append(f"| {r.corpus} | {r.decoder} | {r.utterances} | {r.audio_s:.1f} | "
                     f"{r.cpu_s:.1f} | {r.per_cpu_s:.2f} | "
                     f"{r.per_cpu_s / base[r.corpus].per_cpu_s:.2f}x | {r.mean_batch:.1f} | "
                     f"{r.wer * 100:.1f} % |")
    lines += ["", f"Live: {speakers} speakers talking in real time for {live_s:g} s (utterance, "
              "0.4 s pause, next) through the pipeline's backlog (sheds the oldest speech as "
              "`asr_overload` gaps when behind) and recognizer.", "",
              "| mode | received s | transcribed s | shed s (gaps) | shed % | "
              "end of speech -> transcript p50 s | p95 s | mean batch |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for v in lives:
        lines.append(f"| {v.mode} | {v.received_s:.1f} | {v.transcribed_s:.1f} | "
                     f"{v.shed_s:.1f} | {100 * v.shed_s / max(v.received_s, 1e-9):.1f} % | "
                     f"{pct(v.latencies, 50):.2f} | {pct(v.latencies, 95):.2f} | "
                     f"{v.mean_batch:.1f} |")
    return "\n".join(lines)


async def bench_batching(speakers: int = 16, live_s: float = 60.0,
                         model: str = "tiny.en") -> str:
    recognizer = await asyncio.to_thread(WhisperRecognizer, AsrParams(model=model))
    await asyncio.to_thread(recognizer.warmup)
    try:
        real = evaldata_utterances() if EVALDATA.is_dir() else []
        chat = await sample_room_utterances()
        rows = []
        if real:
            rows += await throughput("evaldata English (real)", real, speakers, recognizer)
        rows += await throughput("sample room (chat-length)", chat, speakers, recognizer)
        pool = real + chat
        lives = [await live(pool, speakers, live_s, recognizer, packed)
                 for packed in (False, True)] if live_s > 0 else []
        return render(recognizer.model_id, speakers, rows, lives, live_s)
    finally:
        recognizer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=16)
    parser.add_argument("--live-s", type=float, default=60.0)
    parser.add_argument("--model", default="tiny.en")
    args = parser.parse_args()
    print(asyncio.run(bench_batching(args.speakers, args.live_s, args.model)))


if __name__ == "__main__":
    main()
