"""Reference handling, text normalisation, scoring and tables of the ASR accuracy benchmark.

Everything here is pure (no model): :mod:`bench.accuracy` decodes, this module decides which
clips count, how text is compared and how the results are reported.

Normalisation (applied identically to the reference and to the hypothesis):

* English: OpenAI Whisper's ``EnglishTextNormalizer`` (the ``whisper-normalizer`` package ships
  it without torch): lowercase, punctuation and symbols removed, hyphens and apostrophes split,
  contractions expanded, spelled-out numbers to digits ("fourteen fifty-five" -> "1455"),
  British -> American spelling, fillers ("um", "uh") dropped, whitespace collapsed, tokens
  without a letter or digit dropped. WER over words.
* Chinese: NFKC (full-width -> half-width), Traditional -> Simplified (``asr.script``: OpenCC
  ``t2s``), lowercase, every punctuation/symbol (Unicode ``P*``/``S*``) and whitespace removed.
  CER over the remaining characters. Latin words in a zh clip are lowercased and counted
  character by character like the Hanzi; numbers are NOT converted ("8" and "八" differ).
* Error rates are corpus-level: total edits / total reference tokens over the clips of a
  configuration (jiwer), not a mean of per-clip rates.
"""

from __future__ import annotations

import csv
import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer

from bench import sections

__all__ = [
    "REAL_REF_TYPES",
    "Clip",
    "ClipResult",
    "ConfigSummary",
    "DecodeConfig",
    "SECTION_HEADING",
    "EvalDataError",
    "ExcludedClip",
    "error_rate",
    "extract_section",
    "load_clips",
    "normalize",
    "normalize_en",
    "normalize_zh",
    "replace_section",
    "source_table",
    "summarize",
    "summary_table",
]

REAL_REF_TYPES = frozenset({
    "human_ground_truth",
    "human_ground_truth_by_identification",
    "ground_truth_from_docs",
    "expected_output_in_upstream_tests",
    "canonical_demo_sentence",
})
"""ref_types of ``refs.tsv`` whose text is what was said (see ``shared/evaldata/INDEX.md``).
The others (``model_output_*``: another ASR system's output; ``unverified_label``; ``none``)
would score agreement with that system, so their clips are excluded and listed."""

LANG_FOLDERS = {"en": "en_speech", "zh": "zh_speech"}
"""Which evaldata folder holds each language's speech folders."""

_CHANNEL = re.compile(r"^(?P<file>\S+) \(channel (?P<n>[12])/\w+\)$")
_ALSO = re.compile(r"^(?P<file>\S+) \(also (?P<also>\S+)\)$")


class EvalDataError(ValueError):
    """A refs.tsv row that cannot be used (missing file, bad column, empty reference)."""


@dataclass(frozen=True, slots=True)
class Clip:
    """One utterance with a reference.

    Attributes:
        utt_id: the refs.tsv ``utt_id``.
        lang: ``en`` or ``zh``: which normalisation and metric apply.
        source: the folder holding the audio, relative to the evaldata folder, e.g.
            ``en_speech/pocketsphinx/cards``.
        path: the audio file (read from shared/ at run time, never copied into the repo).
        channel: 0 = left, 1 = right for a stereo file whose channels are different speakers;
            None = the whole file (mixed down to mono).
        reference: the reference text as published.
        ref_type: the refs.tsv ``ref_type``.
    """

    utt_id: str
    lang: str
    source: str
    path: Path
    channel: int | None
    reference: str
    ref_type: str


@dataclass(frozen=True, slots=True)
class ExcludedClip:
    """A refs.tsv row left out of the scores, and why."""

    utt_id: str
    source: str
    ref_type: str


def _resolve_file(folder: Path, field: str, where: str) -> tuple[Path, int | None]:
    channel: int | None = None
    if m := _CHANNEL.match(field):
        name, channel = m["file"], int(m["n"]) - 1
    elif m := _ALSO.match(field):
        # e.g. "goforward.raw (also goforward_converted.wav)": PyAV cannot read headerless raw
        # PCM, the converted copy holds the same samples behind a WAV header.
        name = m["also"] if m["file"].endswith(".raw") else m["file"]
    else:
        name = field
    path = folder / name
    if not path.is_file():
        raise EvalDataError(f"{where}: audio file {path} does not exist")
    return path, channel


def load_clips(data_dir: Path, langs: Iterable[str]) -> tuple[list[Clip], list[ExcludedClip]]:
    """Read every ``refs.tsv`` of the chosen languages under ``data_dir``.

    Returns:
        (clips with a real reference, rows excluded because their reference is weak or absent),
        both in a stable order (folder, then file order).

    Raises:
        EvalDataError: unknown language, missing folder/column/audio, or an empty reference on a
            row whose ref_type claims one.
    """
    clips: list[Clip] = []
    excluded: list[ExcludedClip] = []
    for lang in langs:
        if lang not in LANG_FOLDERS:
            raise EvalDataError(f"unknown language {lang!r}: expected one of "
                                f"{', '.join(LANG_FOLDERS)}")
        root = data_dir / LANG_FOLDERS[lang]
        if not root.is_dir():
            raise EvalDataError(f"{root} does not exist: is --data the evaldata folder "
                                f"(the one holding INDEX.md)?")
        for refs in sorted(root.glob("*/refs.tsv")):
            source = f"{LANG_FOLDERS[lang]}/{refs.parent.name}"
            with refs.open(newline="", encoding="utf-8") as f:
                # QUOTE_NONE: references contain quotation marks ("forty-two line Bible").
                reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
                missing = {"utt_id", "file", "reference", "ref_type"} - set(reader.fieldnames or ())
                if missing:
                    raise EvalDataError(f"{refs}: missing column(s) {', '.join(sorted(missing))}")
                for line, row in enumerate(reader, start=2):
                    where = f"{refs}:{line}"
                    if row["ref_type"] not in REAL_REF_TYPES:
                        excluded.append(ExcludedClip(row["utt_id"], source, row["ref_type"]))
                        continue
                    if not normalize(row["reference"], lang):
                        raise EvalDataError(f"{where}: reference of {row['utt_id']!r} is empty "
                                            f"after normalisation")
                    path, channel = _resolve_file(refs.parent, row["file"], where)
                    # The audio's own folder (pocketsphinx/cards vs pocketsphinx/librivox): one
                    # folder is one kind of speech, which the by-source table keeps apart.
                    clips.append(Clip(row["utt_id"], lang, str(path.parent.relative_to(data_dir)),
                                      path, channel, row["reference"], row["ref_type"]))
    return clips, excluded


# -- normalisation ---------------------------------------------------------------------------


@functools.cache
def _english_normalizer() -> Callable[[str], str]:
    from whisper_normalizer.english import EnglishTextNormalizer  # loads a 56 kB spelling map

    normalizer: Callable[[str], str] = EnglishTextNormalizer()
    return normalizer


def _to_simplified(text: str) -> str:
    # RoomWarden's own conversion (OpenCC t2s), so the benchmark measures what the product does.
    from asr.script import to_simplified

    return to_simplified(text)


def normalize_en(text: str) -> str:
    """English text as compared: see the module docstring."""
    # The normalizer keeps "." and currency signs for decimals and amounts ("3.5", "$5"), and
    # so leaves a stray "." after an ellipsis ("there for..." -> "there for ."); a token with
    # no letter or digit is not a word anyone said.
    return " ".join(w for w in _english_normalizer()(text).split() if _has_alnum(w))


def _has_alnum(token: str) -> bool:
    return any(ch.isalnum() for ch in token)


def normalize_zh(text: str) -> str:
    """Chinese text as compared: see the module docstring."""
    text = _to_simplified(unicodedata.normalize("NFKC", text)).lower()
    return "".join(ch for ch in text
                   if not ch.isspace() and unicodedata.category(ch)[0] not in "PS")


def normalize(text: str, lang: str) -> str:
    if lang == "en":
        return normalize_en(text)
    if lang == "zh":
        return normalize_zh(text)
    raise ValueError(f"no normalisation for language {lang!r} (expected en or zh)")


def error_rate(lang: str, references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER (en, over words) or CER (zh, over characters) of normalised texts."""
    if not references:
        return float("nan")
    refs = [normalize(r, lang) for r in references]
    hyps = [normalize(h, lang) for h in hypotheses]
    if lang == "en":
        return float(jiwer.wer(refs, hyps))
    return float(jiwer.cer(refs, hyps))


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodeConfig:
    """One row of the table: a model, a compute type, a language and how it is told.

    Attributes:
        language_hint: the ``language`` passed to the recognizer; None = detect per segment.
    """

    model: str
    compute_type: str
    lang: str
    language_hint: str | None

    @property
    def label(self) -> str:
        mode = f"hint {self.language_hint}" if self.language_hint else "detect"
        return f"{self.model} {self.compute_type} {self.lang} ({mode})"


@dataclass(frozen=True, slots=True)
class ClipResult:
    """What one configuration made of one clip.

    Attributes:
        text: the published (guarded) transcript text.
        raw_text: the text without the guards (equal to ``text`` when they removed nothing).
        confidence_class: the recognizer's verdict (``confident`` / ``low`` / ``rejected``).
        language: the language decoded in (the detected one when there was no hint).
        cpu_s / wall_s: process CPU and wall time of the decode (all threads).
    """

    clip: Clip
    text: str
    raw_text: str
    confidence_class: str
    guard_reasons: tuple[str, ...]
    language: str
    audio_s: float
    cpu_s: float
    wall_s: float


@dataclass(frozen=True, slots=True)
class ConfigSummary:
    config: DecodeConfig
    clips: int
    audio_s: float
    error_rate: float
    raw_error_rate: float
    low: int
    rejected: int
    guard_edited: int
    """Clips whose text the guards changed (dropped a sub-segment or everything)."""
    language_correct: int
    cpu_s: float
    wall_s: float

    @property
    def metric(self) -> str:
        return "WER" if self.config.lang == "en" else "CER"

    @property
    def audio_per_cpu_s(self) -> float:
        return self.audio_s / self.cpu_s if self.cpu_s else float("nan")

    @property
    def realtime_factor(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s else float("nan")


def summarize(config: DecodeConfig, results: Sequence[ClipResult]) -> ConfigSummary:
    refs = [r.clip.reference for r in results]
    return ConfigSummary(
        config=config,
        clips=len(results),
        audio_s=sum(r.audio_s for r in results),
        error_rate=error_rate(config.lang, refs, [r.text for r in results]),
        raw_error_rate=error_rate(config.lang, refs, [r.raw_text for r in results]),
        low=sum(r.confidence_class == "low" for r in results),
        rejected=sum(r.confidence_class == "rejected" for r in results),
        guard_edited=sum(r.text != r.raw_text for r in results),
        language_correct=sum(r.language == r.clip.lang for r in results),
        cpu_s=sum(r.cpu_s for r in results),
        wall_s=sum(r.wall_s for r in results),
    )


def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.1f} %"


def summary_table(summaries: Sequence[ConfigSummary]) -> list[str]:
    """One Markdown row per configuration."""
    lines = ["| model | compute | lang | language | clips | audio s | metric | error rate "
             "| raw (no guards) | guards: low / rejected / edited | detected lang correct "
             "| audio s per CPU s | x real time (wall) |",
             "|---|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for s in summaries:
        c = s.config
        detected = (f"{s.language_correct}/{s.clips}" if c.language_hint is None else "-")
        lines.append(
            f"| {c.model} | {c.compute_type} | {c.lang} | "
            f"{'hint ' + c.language_hint if c.language_hint else 'detect'} | {s.clips} | "
            f"{s.audio_s:.1f} | {s.metric} | {_pct(s.error_rate)} | {_pct(s.raw_error_rate)} | "
            f"{s.low} / {s.rejected} / {s.guard_edited} | {detected} | "
            f"{s.audio_per_cpu_s:.2f} | {s.realtime_factor:.1f} |")
    return lines


def source_table(results: Mapping[DecodeConfig, Sequence[ClipResult]], lang: str) -> list[str]:
    """Error rate per speech folder (rows) and configuration of ``lang`` (columns)."""
    configs = [c for c in results if c.lang == lang]
    if not configs:
        return []
    sources = list(dict.fromkeys(r.clip.source for c in configs for r in results[c]))
    metric = "WER" if lang == "en" else "CER"
    lines = [f"| {metric} by source | clips | " + " | ".join(c.label for c in configs) + " |",
             "|---|---:|" + "---:|" * len(configs)]
    for source in sources:
        cells, count = [], 0
        for c in configs:
            rows = [r for r in results[c] if r.clip.source == source]
            count = len(rows)
            cells.append(_pct(error_rate(lang, [r.clip.reference for r in rows],
                                         [r.text for r in rows])))
        lines.append(f"| {source} | {count} | " + " | ".join(cells) + " |")
    return lines


SECTION_HEADING = "## ASR accuracy"
"""The heading that starts this benchmark's section of bench/RESULTS.md."""


def replace_section(document: str, section: str) -> str:
    """``document`` with its ``## ASR accuracy...`` section replaced by ``section`` (appended
    when it has none); other sections are left byte for byte."""
    return sections.replace_section(document, section, SECTION_HEADING)


def extract_section(document: str) -> str | None:
    """The ``## ASR accuracy`` section of ``document`` (None when it has none)."""
    return sections.extract_section(document, SECTION_HEADING)
