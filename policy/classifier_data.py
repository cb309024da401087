"""The labelled text the policy classifier is trained and scored on, and its fixed splits.

Both datasets are read from ``../shared/evaldata/toxic_text/`` at training / benchmark time (never
copied into the repository). Labels are mapped to one binary target, *abusive*:

- **COLD** (Chinese, Deng et al. EMNLP 2022, Apache-2.0): ``label`` 1 offensive -> abusive,
  0 safe -> not. Splits: ``train.csv`` is cut (stratified, seeded) into *train* (90 %) and
  *calibration* (10 %); ``dev.csv`` is the *held-out test* set (COLD's own test split is not in
  the evaldata).
- **Davidson et al. 2017** (English tweets, MIT): ``class`` 0 hate speech and 1 offensive ->
  abusive, 2 neither -> not. ``labeled_data.csv`` (an 80 % sample of the original) is cut
  stratified by ``class`` into train 70 % / calibration 10 % / test 20 %. ``hate`` keeps the
  3-way class so hate recall can be reported on its own. Tweet debris that a voice transcript
  never has is removed first: HTML entities, ``RT``, @mentions, URLs, ``#`` of hashtags.

Splits are deterministic: a row's split depends only on the seed and its order in the file.
"""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "LabelledText",
    "SplitData",
    "clean_tweet",
    "default_evaldata_dir",
    "load_split",
]

SEED = 20261121
"""Seed of every split (and of training)."""


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """One labelled dataset: where it is, its licence, its language, how its labels map."""

    key: str
    language: str
    folder: str
    licence: str
    citation: str
    label_mapping: str
    split: str


DATASETS: dict[str, DatasetInfo] = {
    "zh_COLD": DatasetInfo(
        key="zh_COLD", language="zh", folder="toxic_text/zh_COLD", licence="Apache-2.0",
        citation="Deng et al., COLD: A Benchmark for Chinese Offensive Language Detection, "
                 "EMNLP 2022 (github.com/thu-coai/COLDataset@a0c55a9)",
        label_mapping="label 1 offensive -> abusive; 0 safe -> not abusive",
        split="train.csv -> train 90 % / calibration 10 % (stratified, seeded); "
              "dev.csv -> held-out test",
    ),
    "en_davidson": DatasetInfo(
        key="en_davidson", language="en", folder="toxic_text/en_davidson_hate_offensive",
        licence="MIT",
        citation="Davidson et al., Automated Hate Speech Detection and the Problem of "
                 "Offensive Language, ICWSM 2017 "
                 "(github.com/t-davidson/hate-speech-and-offensive-language@cb50f7e)",
        label_mapping="class 0 hate + 1 offensive -> abusive; 2 neither -> not abusive",
        split="labeled_data.csv (80 % sample) -> train 70 % / calibration 10 % / test 20 % "
              "(stratified by class, seeded)",
    ),
}


@dataclass(frozen=True, slots=True)
class LabelledText:
    text: str
    abusive: bool
    hate: bool = False
    """Davidson class 0 (hate speech); always False for COLD."""


@dataclass(frozen=True, slots=True)
class SplitData:
    """One dataset cut into its three parts."""

    info: DatasetInfo
    train: tuple[LabelledText, ...]
    calibration: tuple[LabelledText, ...]
    test: tuple[LabelledText, ...]


def default_evaldata_dir() -> Path:
    """``../shared/evaldata`` next to the repository checkout."""
    return Path(__file__).resolve().parent.parent.parent / "shared" / "evaldata"


_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@\w+:?")
_RETWEET = re.compile(r"\bRT\b")


def clean_tweet(text: str) -> str:
    """A tweet without the parts a voice transcript never has (entities, RT, @user, URLs, #)."""
    text = html.unescape(html.unescape(text))  # the CSV double-escapes some (&amp;#8220;)
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    text = _RETWEET.sub(" ", text)
    return " ".join(text.replace("#", " ").split())


def _stratified_parts(labels: Sequence[int], fractions: Sequence[float],
                      seed: int) -> list[np.ndarray]:
    """Row indexes of each part: every label value is shuffled (seeded) and cut by
    ``fractions`` (the last part takes the remainder)."""
    rng = np.random.default_rng(seed)
    label_array = np.asarray(labels)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for value in np.unique(label_array):
        rows = np.flatnonzero(label_array == value)
        rng.shuffle(rows)
        start = 0
        for k, fraction in enumerate(fractions):
            stop = len(rows) if k == len(fractions) - 1 else start + round(fraction * len(rows))
            parts[k].append(rows[start:stop])
            start = stop
    return [np.sort(np.concatenate(p)) for p in parts]


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"labelled data not found: {path}")
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; has {reader.fieldnames}")
        return list(reader)


def _cold_rows(path: Path) -> list[LabelledText]:
    out = []
    for line, row in enumerate(_read_csv(path, ("label", "TEXT")), start=2):
        if row["label"] not in ("0", "1"):
            raise ValueError(f"{path}:{line}: label must be 0 or 1, got {row['label']!r}")
        out.append(LabelledText(row["TEXT"], row["label"] == "1"))
    return out


def _load_cold(root: Path, seed: int) -> SplitData:
    info = DATASETS["zh_COLD"]
    train_rows = _cold_rows(root / info.folder / "train.csv")
    test_rows = _cold_rows(root / info.folder / "dev.csv")
    train_idx, calib_idx = _stratified_parts([int(r.abusive) for r in train_rows],
                                             (0.9, 0.1), seed)
    return SplitData(info, tuple(train_rows[i] for i in train_idx),
                     tuple(train_rows[i] for i in calib_idx), tuple(test_rows))


def _load_davidson(root: Path, seed: int) -> SplitData:
    info = DATASETS["en_davidson"]
    path = root / info.folder / "labeled_data.csv"
    rows: list[LabelledText] = []
    classes: list[int] = []
    for line, row in enumerate(_read_csv(path, ("class", "tweet")), start=2):
        if row["class"] not in ("0", "1", "2"):
            raise ValueError(f"{path}:{line}: class must be 0, 1 or 2, got {row['class']!r}")
        cls = int(row["class"])
        classes.append(cls)
        rows.append(LabelledText(clean_tweet(row["tweet"]), cls in (0, 1), hate=cls == 0))
    train_idx, calib_idx, test_idx = _stratified_parts(classes, (0.7, 0.1, 0.2), seed)
    return SplitData(info, tuple(rows[i] for i in train_idx),
                     tuple(rows[i] for i in calib_idx), tuple(rows[i] for i in test_idx))


def load_split(key: str, evaldata_dir: Path | None = None, seed: int = SEED) -> SplitData:
    """Dataset ``key`` (``zh_COLD`` or ``en_davidson``) read and split."""
    root = evaldata_dir or default_evaldata_dir()
    if key == "zh_COLD":
        return _load_cold(root, seed)
    if key == "en_davidson":
        return _load_davidson(root, seed)
    raise KeyError(f"unknown dataset {key!r}; known: {sorted(DATASETS)}")
