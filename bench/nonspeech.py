"""Ten minutes of generated non-speech through the real pipeline: how much text comes out?

    python -m bench.nonspeech                      # tiny.en, files in a temporary directory
    python -m bench.nonspeech --model base --language auto --out /tmp/nonspeech
    python -m bench.nonspeech --interleave --speech ../shared/evaldata/en_speech/*/*.wav

Generates :data:`bench.nonspeech_sounds.PROGRAMME` (silence, hiss, coloured noise, mains hum,
clicks, typing, breathing, coughs and claps, melodies, chords, drums, a sweep, DTMF, a beep,
syllabic-noise babble; seeded, no speech of any kind) as one WAV per simulated speaker, then runs
every file through what ``roomwarden moderate`` runs: file -> VAD -> the real WhisperRecognizer
(packing included) -> guards -> PolicyEngine with the configured (default) rule pack. Kafka is
left out: it cannot change what is transcribed or flagged. ``--interleave`` plays the speakers
at once (live-room arrival order) instead of one after another; ``--speech`` adds real speech
files as further speakers, to check that speech next to non-speech stays ``confident``.

Prints one row per sound: seconds of audio, VAD segments, transcripts by confidence class,
alerts; then the text of every non-speech transcript the guards did not reject, with Whisper's
signals. Exit status 1 when any non-speech transcript is ``confident`` or raised an alert
(issue 4's bar: zero of each).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import wave
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from asr.frames import Transcript
from bench.nonspeech_sounds import PROGRAMME, SAMPLE_RATE, Span, render, to_pcm16
from ingest.files import file_segments
from ingest.frames import SpeechSegment
from policy.frames import Alert
from roomwarden.app import running_pipeline, vad_params
from roomwarden.logs import configure_logging
from roomwarden.settings import Settings

ROOM_ID = "nonspeech"
SPEECH = "speech"
"""Row (and span) name of the optional real-speech speakers."""
DEFAULT_SEED = 20260404


@dataclass(frozen=True, slots=True)
class SpeakerFile:
    """One generated file: the speaker it plays and where each sound lies in it."""

    speaker: str
    path: Path
    spans: tuple[Span, ...]


def generate(out_dir: Path, seed: int = DEFAULT_SEED) -> list[SpeakerFile]:
    """Write one 16 kHz mono s16 WAV per speaker of the programme, plus ``manifest.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for speaker, sounds in PROGRAMME.items():
        audio, spans = render(sounds, seed)
        path = out_dir / f"{speaker}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(to_pcm16(audio))
        files.append(SpeakerFile(speaker, path, spans))
    manifest = {"seed": seed, "sample_rate": SAMPLE_RATE,
                "files": {f.speaker: {"path": f.path.name, "spans": [asdict(s) for s in f.spans]}
                          for f in files}}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return files


@dataclass
class SoundRow:
    """What the pipeline made of one sound."""

    sound: str
    seconds: float
    segments: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    kept: list[Transcript] = field(default_factory=list)
    """Transcripts that were not rejected (their text reached policy and Kafka)."""
    speech: bool = False
    """The row of the optional real-speech speakers (``--speech``), not a non-speech sound."""


@dataclass
class NonSpeechReport:
    model_id: str
    rows: list[SoundRow]
    alerts: list[Alert]
    wall_s: float

    @property
    def sounds(self) -> list[SoundRow]:
        """The non-speech rows."""
        return [r for r in self.rows if not r.speech]

    @property
    def confident(self) -> int:
        """Confident transcripts of non-speech (the bar: zero)."""
        return sum(r.classes["confident"] for r in self.sounds)

    @property
    def nonspeech_alerts(self) -> int:
        """Alerts on non-speech (the bar: zero)."""
        return sum(r.alerts for r in self.sounds)


def sound_of(spans: tuple[Span, ...], segment: SpeechSegment) -> str:
    """The sound a segment overlaps most (segments never span two sounds: see ``GAP_S``)."""
    def overlap(s: Span) -> float:
        return min(s.end_s, segment.end_offset_s) - max(s.start_s, segment.start_offset_s)

    return max(spans, key=overlap).sound


async def run_nonspeech(settings: Settings, files: list[SpeakerFile],
                        speech: list[Path] | None = None, *,
                        interleave: bool = False) -> NonSpeechReport:
    """Push every file through VAD -> recognizer -> guards -> policy (no Kafka).

    Segments reach ASR file after file, as ``roomwarden moderate`` sends them, so the recognizer
    packs one speaker's consecutive sounds into a window; with ``interleave`` all files play at
    once, as the speakers of one live room would, and segments arrive in the order they close
    (end offset), so different speakers' sounds share windows. Nothing is shed (an offline job
    waits for ASR).

    Args:
        settings: model, VAD, packing and rule pack (``Settings()`` = the defaults).
        files: the generated non-speech speakers.
        speech: optional real speech files, as further speakers of the same room, to see the
            guards keep speech ``confident`` next to non-speech (counted in a ``speech`` row,
            never in :attr:`NonSpeechReport.confident`).
    """
    speech_files = [SpeakerFile(f"speech-{i}-{p.stem}", p, (Span(SPEECH, 0.0, float("inf")),))
                    for i, p in enumerate(speech or ())]
    rows = {s.sound: SoundRow(s.sound, s.end_s - s.start_s) for f in files for s in f.spans}
    if speech_files:
        rows[SPEECH] = SoundRow(SPEECH, 0.0, speech=True)
    spans = {f.speaker: f.spans for f in [*files, *speech_files]}
    alerts: list[Alert] = []

    def row(segment: SpeechSegment) -> SoundRow:
        return rows[sound_of(spans[segment.speaker_id], segment)]

    def on_transcript(t: Transcript) -> None:
        r = row(t.segment)
        r.classes[t.confidence_class] += 1
        if t.confidence_class != "rejected" and not r.speech:
            r.kept.append(t)

    def on_alert(alert: Alert, _latency: float | None) -> None:
        alerts.append(alert)
        row(alert.transcript.segment).alerts += 1

    segments: list[SpeechSegment] = []
    for f in [*files, *speech_files]:
        async for segment in file_segments(f.path, ROOM_ID, f.speaker, vad_params(settings)):
            segments.append(segment)
            row(segment).segments += 1
            if f in speech_files:
                rows[SPEECH].seconds += segment.duration_s
    if interleave:
        segments.sort(key=lambda s: (s.end_offset_s, s.speaker_id))
    t0 = time.monotonic()
    async with running_pipeline(settings, kafka=False, on_alert=on_alert,
                                on_transcript=on_transcript, shed=False) as running:
        if running.recognizer is None:
            raise ValueError("bench.nonspeech needs the local pipeline (pipeline.asr = 'local')")
        model_id = running.recognizer.model_id
        for segment in segments:
            await running.pipeline.segments.put(segment)
    return NonSpeechReport(model_id, list(rows.values()), alerts, time.monotonic() - t0)


def _clip(text: str, limit: int = 120) -> str:
    """A transcript for one line of the report (decoding loops run to hundreds of characters)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _row(name: str, seconds: float, segments: int, classes: Counter[str], alerts: int) -> str:
    return (f"| {name} | {seconds:.0f} | {segments} | {classes['confident']} | {classes['low']} "
            f"| {classes['rejected']} | {alerts} |")


def format_report(report: NonSpeechReport) -> str:
    """The per-sound table (Markdown), the kept non-speech transcripts, the speech row."""
    sounds = report.sounds
    lines = [f"## Non-speech through the pipeline ({report.model_id}, VAD -> ASR -> guards -> "
             "policy)", "",
             "| sound | audio s | VAD segments | confident | low | rejected | alerts |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [_row(r.sound, r.seconds, r.segments, r.classes, r.alerts) for r in sounds]
    lines.append(_row("**all non-speech**", sum(r.seconds for r in sounds),
                      sum(r.segments for r in sounds), sum((r.classes for r in sounds), Counter()),
                      report.nonspeech_alerts))
    lines += [_row("real speech (--speech)", r.seconds, r.segments, r.classes, r.alerts)
              for r in report.rows if r.speech]
    kept = [(r.sound, t) for r in sounds for t in r.kept]
    lines += ["", f"Non-speech transcripts not rejected: {len(kept)}" + ("" if kept else " (none)")]
    for sound, t in kept:
        seg = t.segment
        lines.append(
            f"- {sound} {seg.start_offset_s:.1f}-{seg.end_offset_s:.1f} s [{t.confidence_class}"
            f" {','.join(t.guard_reasons)}] no_speech={t.no_speech_prob:.2f} "
            f"avg_logprob={t.avg_logprob:.2f} cr={t.compression_ratio:.2f} "
            f"p(word)={t.confidence:.2f}: {_clip(t.text)!r}")
    lines += ["", f"Wall time {report.wall_s:.1f} s (model load and ASR; generation and VAD "
              "excluded)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nonspeech", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="ASR model name or CTranslate2 directory (default: settings, tiny.en)")
    parser.add_argument("--language", default=None,
                        help="decode language, or 'auto' to detect (multilingual models)")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the generated files (and manifest.json) here")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--interleave", action="store_true",
                        help="play all files at once (live-room arrival order) instead of one "
                             "after another (roomwarden moderate's order)")
    parser.add_argument("--speech", type=Path, nargs="*", default=[], metavar="FILE",
                        help="real speech files to play as further speakers of the room (their "
                             "row shows whether speech stays confident next to non-speech)")
    args = parser.parse_args(argv)
    configure_logging("warning")
    settings = Settings()
    if args.model:
        settings.asr.model = args.model
    if args.language:
        settings.asr.language = None if args.language == "auto" else args.language
    with tempfile.TemporaryDirectory(prefix="nonspeech-") as tmp:
        out = args.out or Path(tmp)
        t0 = time.monotonic()
        files = generate(out, args.seed)
        print(f"generated {len(files)} files in {out} ({time.monotonic() - t0:.1f} s)",
              file=sys.stderr, flush=True)
        report = asyncio.run(run_nonspeech(settings, files, args.speech,
                                          interleave=args.interleave))
    print(format_report(report), flush=True)
    return 1 if report.confident or report.nonspeech_alerts else 0


if __name__ == "__main__":
    sys.exit(main())
