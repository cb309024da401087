"""ASR accuracy over real speech (English WER, Mandarin CER) per model and compute type.

    python -m bench.accuracy                                  # tiny.en + base, int8 + float32
    python -m bench.accuracy --models tiny.en --compute int8 --lang en
    python -m bench.accuracy --out bench/RESULTS.md           # also rewrite its section there
    python -m bench.run --suite accuracy --out bench/RESULTS.md   # the same, through bench.run

The clips are read from ``../shared/evaldata`` (``--data``) at run time: several have
undocumented recording rights and must never be copied into the repository. Only clips whose
``refs.tsv`` reference is what was said are scored (:data:`bench.accuracy_metrics.REAL_REF_TYPES`);
the others are listed as excluded.

Each clip is decoded whole, as one ``SpeechSegment``, through RoomWarden's own recognizer
(``roomwarden.app.build_recognizer`` -> ``WhisperRecognizer.transcribe``: the product's decoding
settings and hallucination guards). When the guards changed a clip's text, the same clip is
decoded again with the guards off, so the table shows the raw error rate beside the published
one. Normalisation and metrics: :mod:`bench.accuracy_metrics`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asr.recognizer import WhisperRecognizer, float32_to_pcm
from bench.accuracy_metrics import (
    Clip,
    ClipResult,
    DecodeConfig,
    ExcludedClip,
    load_clips,
    normalize,
    replace_section,
    source_table,
    summarize,
    summary_table,
)
from ingest.frames import SAMPLE_RATE, SpeechSegment
from roomwarden.app import build_recognizer
from roomwarden.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "evaldata"
"""The shared evaluation data beside the repository (``../shared/evaldata``)."""

DEFAULT_MODELS = ("tiny.en", "base")
DEFAULT_COMPUTE = ("int8", "float32")
DEFAULT_LANGS = ("en", "zh")


def decode_configs(models: Sequence[str], computes: Sequence[str],
                   langs: Sequence[str]) -> list[DecodeConfig]:
    """The rows to run. English is decoded with the ``en`` hint (the product's default);
    Mandarin with the ``zh`` hint and with detection (``language=None``), the two ways a
    deployment can run it. English-only models (``*.en``) get no Mandarin rows."""
    configs = []
    for model in models:
        for compute in computes:
            for lang in langs:
                if lang == "en":
                    configs.append(DecodeConfig(model, compute, "en", "en"))
                elif not model.endswith(".en"):
                    configs.append(DecodeConfig(model, compute, lang, lang))
                    configs.append(DecodeConfig(model, compute, lang, None))
    return configs


def load_audio(clip: Clip) -> np.ndarray:
    """The clip as 16 kHz mono float32 (faster-whisper's decoder: any rate, channels mixed
    down), or the one channel the reference belongs to for a two-speaker stereo file."""
    from faster_whisper import decode_audio

    if clip.channel is None:
        return np.asarray(decode_audio(str(clip.path), sampling_rate=SAMPLE_RATE))
    channels = decode_audio(str(clip.path), sampling_rate=SAMPLE_RATE, split_stereo=True)
    return np.asarray(channels[clip.channel])


def clip_segment(clip: Clip, audio: np.ndarray) -> SpeechSegment:
    """The whole clip as one segment, the way the VAD hands speech to the recognizer."""
    pcm = float32_to_pcm(audio)
    duration = len(audio) / SAMPLE_RATE
    speaker = f"{clip.utt_id}#{clip.channel}" if clip.channel is not None else clip.utt_id
    return SpeechSegment(
        room_id="accuracy", speaker_id=speaker,
        segment_id=SpeechSegment.make_id("accuracy", speaker, 0.0, pcm), seq=0, pcm=pcm,
        start_offset_s=0.0, end_offset_s=duration, start_time=0.0, end_time=duration,
        end_monotonic=time.monotonic(), stream_id=str(clip.path))


def _recognizer(config: DecodeConfig) -> WhisperRecognizer:
    settings = Settings()
    asr = settings.asr.model_copy(update={"model": config.model,
                                          "compute_type": config.compute_type,
                                          "language": config.language_hint})
    return build_recognizer(settings.model_copy(update={"asr": asr}))


async def run_config(config: DecodeConfig, clips: Sequence[Clip],
                     segments: dict[Clip, SpeechSegment]) -> list[ClipResult]:
    recognizer = await asyncio.to_thread(_recognizer, config)
    raw: WhisperRecognizer | None = None  # guards off; loaded only if the guards edit a clip
    results = []
    try:
        await asyncio.to_thread(recognizer.warmup)
        for clip in clips:
            segment = segments[clip]
            c0, w0 = time.process_time(), time.perf_counter()
            t = await recognizer.transcribe(segment)
            cpu_s, wall_s = time.process_time() - c0, time.perf_counter() - w0
            raw_text = t.text
            # Only these two guards remove text; "low" classes keep it.
            if {"no_speech", "invented_phrase"} & set(t.guard_reasons):
                if raw is None:
                    raw = await asyncio.to_thread(
                        WhisperRecognizer, dataclasses.replace(recognizer.params, guards=False))
                raw_text = (await raw.transcribe(segment)).text
            results.append(ClipResult(clip, t.text, raw_text, t.confidence_class,
                                      t.guard_reasons, t.language, segment.duration_s, cpu_s,
                                      wall_s))
    finally:
        recognizer.close()
        if raw is not None:
            raw.close()
    return results


async def run(configs: Sequence[DecodeConfig], clips: Sequence[Clip], *,
              verbose: bool = False) -> dict[DecodeConfig, list[ClipResult]]:
    segments = {c: clip_segment(c, load_audio(c)) for c in clips
                if c.lang in {cfg.lang for cfg in configs}}
    out: dict[DecodeConfig, list[ClipResult]] = {}
    for config in configs:
        started = time.perf_counter()
        out[config] = await run_config(config, [c for c in clips if c.lang == config.lang],
                                       segments)
        s = summarize(config, out[config])
        print(f"{config.label}: {s.metric} {100 * s.error_rate:.1f} % over {s.clips} clips "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
        if verbose:
            for r in out[config]:
                print(f"  {r.clip.utt_id} [{r.confidence_class} {r.language}]\n"
                      f"    ref: {normalize(r.clip.reference, r.clip.lang)}\n"
                      f"    hyp: {normalize(r.text, r.clip.lang)}", file=sys.stderr)
    return out


NORMALISATION = (
    "Normalisation (reference and hypothesis alike): **English** -- OpenAI Whisper's "
    "`EnglishTextNormalizer` (package `whisper-normalizer`, no torch): lowercase, punctuation "
    "removed, hyphens to spaces, contractions expanded, spelled-out numbers to digits, British "
    "to American spelling, fillers dropped, whitespace collapsed; WER over words. "
    "**Mandarin** -- NFKC (full-width to half-width), Traditional to Simplified "
    "(`asr.script.to_simplified`: OpenCC "
    "`t2s`), lowercase, punctuation/symbols and whitespace removed; CER over characters (Latin "
    "letters in a zh clip are counted as characters too; numbers are not converted, `8` is not "
    "`八`). Error rates are corpus-level (all edits / all reference tokens of the row, jiwer).")


SOURCE_NOTES = {
    "en": "English sources: read speech (LJSpeech, LibriVox, LibriSpeech, JFK), short commands "
          "(pocketsphinx `cards`: card names, `goforward`; uberi `english`: \"one two three\") "
          "and one noisy conversational clip (sherpa_docs). Known artifact of Whisper's number "
          "normaliser: a spoken digit sequence in a reference becomes one number (\"one two "
          "three\" -> `123`, \"five five\" -> `55`) while a hypothesis written \"One, 2, 3\" "
          "stays three tokens: up to 3 of the errors on uberi `english` and 1 on `cards_004` "
          "are this, not misrecognition.",
    "zh": "Mandarin sources: `paraformer-zh-2025-10-07_sichuan` is Sichuanese dialect (16 "
          "clips); `funasr-nano-2025-12-30` holds 2 dialect clips (Hunan, Shanghainese) and 4 "
          "far-field Mandarin ones; `qwen3-asr-0.6b` fast speech, a phone number read in noise "
          "and a tongue twister; `funasr` and `uberi` one standard-Mandarin sentence each. "
          "Whisper base is weak on all but standard Mandarin; read the per-folder rows, not "
          "only the total.",
}


def render(results: dict[DecodeConfig, list[ClipResult]], excluded: Sequence[ExcludedClip], *,
           command: str, machine: str, commit: str, started: str, elapsed_s: float,
           load: tuple[float, float], data_dir: Path) -> str:
    summaries = [summarize(c, rs) for c, rs in results.items()]
    settings = Settings().asr
    cpu_s = sum(r.cpu_s for rs in results.values() for r in rs)
    excluded_text = "; ".join(f"`{e.source}` {e.utt_id} ({e.ref_type})" for e in excluded)
    lines = [
        "## ASR accuracy (real speech: English WER, Mandarin CER, per model and compute type)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}  ",
        f"Commit: {commit}  ",
        f"Date: {started}; whole run {elapsed_s / 60:.1f} min wall (model loads included), "
        f"{cpu_s / 60:.1f} min of decoding CPU time; load average (1 min) at start / end "
        f"{load[0]:.2f} / {load[1]:.2f} on {os.cpu_count()} cores (a shared machine: wall "
        f"times and *x real time* stretch with the load, *audio s per CPU s* much less).",
        "",
        f"Clips: `{os.path.relpath(data_dir, REPO_ROOT)}/` (read at run time, not copied into "
        f"the repository: several have undocumented recording rights). Scored: ref_type "
        f"human_ground_truth, "
        f"human_ground_truth_by_identification, ground_truth_from_docs, "
        f"expected_output_in_upstream_tests, canonical_demo_sentence. Excluded (reference is "
        f"another ASR's output, or none): {excluded_text or 'none'}.",
        "",
        "Each clip is decoded whole, as one `SpeechSegment`, through RoomWarden's recognizer "
        "(`build_recognizer` -> `WhisperRecognizer.transcribe`: greedy, temperature 0, "
        f"beam {settings.beam_size}, {settings.cpu_threads} threads, hallucination guards on); "
        "audio via `faster_whisper.decode_audio` (16 kHz mono; the stereo two-speaker file is "
        "scored per channel, each against its own reference). *error rate* = the published "
        "(guarded) text; *raw* = the same decode with the guards off (differs only where the "
        "guards dropped text); *low / rejected* = clips the guards classed so; *edited* = "
        "clips whose text the guards changed. CPU time is the process's (all threads), one "
        "decode at a time.",
        "",
        NORMALISATION,
        "",
        *summary_table(summaries),
    ]
    for lang in ("en", "zh"):
        table = source_table(results, lang)
        if table:
            lines += ["", *table, "", SOURCE_NOTES[lang]]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from bench.run import commit, machine  # the header facts bench.run reports too

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated registry names or model directories")
    parser.add_argument("--compute", default=",".join(DEFAULT_COMPUTE),
                        help="comma-separated CTranslate2 compute types")
    parser.add_argument("--lang", default=",".join(DEFAULT_LANGS), help="en, zh or en,zh")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"the evaldata folder (default {DEFAULT_DATA})")
    parser.add_argument("--out", type=Path,
                        help="rewrite the ASR accuracy section of this Markdown file")
    parser.add_argument("--verbose", action="store_true",
                        help="print every clip's normalised reference and hypothesis (stderr)")
    args = parser.parse_args(argv)
    split = lambda s: tuple(x.strip() for x in s.split(",") if x.strip())  # noqa: E731
    models, computes, langs = split(args.models), split(args.compute), split(args.lang)
    configs = decode_configs(models, computes, langs)
    if not configs:
        parser.error(f"nothing to run: models {models} x languages {langs} (English-only models "
                     f"have no zh rows)")
    clips, excluded = load_clips(args.data.resolve(), langs)

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    results = asyncio.run(run(configs, clips, verbose=args.verbose))
    elapsed = time.perf_counter() - t0
    command = "python -m bench.accuracy " + " ".join(sys.argv[1:] if argv is None else argv)
    section = render(results, excluded, command=command.strip(), machine=machine(),
                     commit=commit(), started=started, elapsed_s=elapsed,
                     load=(load0, os.getloadavg()[0]),
                     data_dir=args.data.resolve())
    print(section)
    if args.out:
        document = args.out.read_text() if args.out.exists() else ""
        args.out.write_text(replace_section(document, section))
        print(f"wrote the ASR accuracy section of {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from roomwarden.logs import configure_logging

    configure_logging("warning")
    sys.exit(main())
