"""Train the policy text classifier (``python -m policy.train_classifier --out DIR``).

The shipped model:
``python -m policy.train_classifier --out policy/models/builtin --compare-joint``.

Needs the ``train`` extra (scikit-learn) and ``../shared/evaldata/toxic_text`` (read here, never
copied). For each language it fits, deterministically:

1. hashed character n-gram features (:mod:`policy.classifier_features`) of every text;
2. an L2 logistic regression (lbfgs) on the *train* split, its ``C`` picked from ``--c-grid`` by
   ROC-AUC on the *calibration* split (AUC ignores calibration, so the same split can then fit
   the calibration map);
3. a Platt map ``sigmoid(a * margin + b)`` fitted on the calibration split's margins;

then scores the held-out *test* split through the same code the runtime uses
(:class:`policy.classifier.LanguageModel`) and writes ``classifier.json`` (features, models,
datasets, licences, splits, sizes, metrics, date, commit) + ``weights_<lang>.npy`` + ``NOTICE``.
English is trained only on Davidson et al. (MIT), Chinese only on COLD (Apache-2.0). Splits:
:mod:`policy.classifier_data`. ``--compare-joint`` also fits one bilingual model and records its
held-out numbers beside the per-language ones (the shipped layout stays per-language).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import sklearn
from sklearn.linear_model import LogisticRegression

from policy.classifier import FORMAT, MANIFEST_FILE, LanguageModel, sha256_file
from policy.classifier_data import SEED, LabelledText, SplitData, load_split
from policy.classifier_eval import best_f1_threshold, binary_metrics
from policy.classifier_features import FeatureParams, hashed_ngrams

__all__ = ["feature_matrix", "fit_language_model", "main", "write_artifact"]

LANGUAGE_DATASET = {"en": "en_davidson", "zh": "zh_COLD"}
"""Which dataset trains which language's model (one each: licences stay separable)."""
NAME = "char-ngram-lr"

NOTICE = """\
RoomWarden policy classifier weights (policy/models/builtin)

These files are numbers derived by training (python -m policy.train_classifier) on:

- weights_en.npy: "hate-speech-and-offensive-language" by Thomas Davidson, Dana Warmsley,
  Michael Macy and Ingmar Weber (ICWSM 2017), data/labeled_data.csv (an 80 % sample),
  github.com/t-davidson/hate-speech-and-offensive-language at cb50f7e.
  MIT License, Copyright (c) 2017 Tom Davidson. Permission is hereby granted, free of charge, to
  any person obtaining a copy of this software and associated documentation files (the
  "Software"), to deal in the Software without restriction, including without limitation the
  rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the
  Software, and to permit persons to whom the Software is furnished to do so, subject to the
  following conditions: The above copyright notice and this permission notice shall be included
  in all copies or substantial portions of the Software. THE SOFTWARE IS PROVIDED "AS IS",
  WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.
  Known limitation (Davidson et al. 2019, arXiv:1905.12516): models trained on this data flag
  African-American English as offensive more often; treat English verdicts as review signals.

- weights_zh.npy: COLDataset by Jiawen Deng, Jingyan Zhou, Hao Sun, Fei Mi and Minlie Huang
  ("COLD: A Benchmark for Chinese Offensive Language Detection", EMNLP 2022),
  COLDataset/train.csv, github.com/thu-coai/COLDataset at a0c55a9.
  Licensed under the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0).
  Modification notice: the weights are a statistical model fitted to the data, not the data.

No text of either dataset is stored in this directory.
"""


def feature_matrix(texts: Sequence[str], params: FeatureParams) -> sp.csr_matrix:
    indices, values, indptr = [], [], [0]
    for text in texts:
        i, v = hashed_ngrams(text, params)
        indices.append(i)
        values.append(v)
        indptr.append(indptr[-1] + len(i))
    data = np.concatenate(values) if values else np.empty(0, np.float32)
    idx = np.concatenate(indices) if indices else np.empty(0, np.int64)
    return sp.csr_matrix((data, idx, np.asarray(indptr)), shape=(len(texts), params.n_features))


def _margins(model: LanguageModel, x: sp.csr_matrix) -> npt.NDArray[np.float64]:
    return np.asarray(x @ model.weights.astype(np.float64)).ravel() + model.intercept


def _probabilities(model: LanguageModel, texts: Sequence[str],
                   params: FeatureParams) -> npt.NDArray[np.float64]:
    # The runtime path, text by text: what is measured is what ships.
    return np.array([model.probability(*hashed_ngrams(t, params)) for t in texts])


def fit_language_model(language: str, train: Sequence[LabelledText],
                       calibration: Sequence[LabelledText], params: FeatureParams,
                       c_grid: Sequence[float] = (4.0, 16.0, 64.0),
                       seed: int = SEED) -> tuple[LanguageModel, dict[str, Any]]:
    """Fit, pick C, calibrate (see module doc). Returns the model and what was chosen."""
    x_train = feature_matrix([r.text for r in train], params)
    y_train = np.array([r.abusive for r in train])
    x_cal = feature_matrix([r.text for r in calibration], params)
    y_cal = np.array([r.abusive for r in calibration])
    if y_train.all() or not y_train.any() or y_cal.all() or not y_cal.any():
        raise ValueError(f"{language}: train and calibration splits need both classes")
    best: tuple[float, float, LanguageModel] | None = None
    auc_by_c: dict[str, float] = {}
    for c in c_grid:
        lr = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(x_train, y_train)
        candidate = LanguageModel(language, lr.coef_.ravel().astype(np.float32),
                                  float(lr.intercept_[0]), 1.0, 0.0)
        auc = binary_metrics(y_cal, 1.0 / (1.0 + np.exp(-_margins(candidate, x_cal)))).roc_auc
        auc_by_c[str(c)] = round(auc, 5)
        if best is None or auc > best[0]:
            best = (auc, c, candidate)
    assert best is not None
    _, c_best, raw = best
    platt = LogisticRegression(C=1e6, max_iter=1000, random_state=seed).fit(
        _margins(raw, x_cal).reshape(-1, 1), y_cal)
    model = LanguageModel(language, raw.weights, raw.intercept,
                          float(platt.coef_[0, 0]), float(platt.intercept_[0]))
    p_cal = _probabilities(model, [r.text for r in calibration], params)
    return model, {"C": c_best, "calibration_roc_auc_by_C": auc_by_c,
                   "f1_best_threshold_on_calibration": best_f1_threshold(y_cal, p_cal)}


def held_out_metrics(model: LanguageModel, split: SplitData, params: FeatureParams,
                     thresholds: Sequence[float]) -> dict[str, Any]:
    texts = [r.text for r in split.test]
    y = np.array([r.abusive for r in split.test])
    p = _probabilities(model, texts, params)
    raw = LanguageModel(model.language, model.weights, model.intercept, 1.0, 0.0)
    p_raw = _probabilities(raw, texts, params)
    out: dict[str, Any] = {
        "at_threshold": {str(t): binary_metrics(y, p, t).as_dict() for t in thresholds},
        "uncalibrated_lr_at_0.5": binary_metrics(y, p_raw, 0.5).as_dict(),
    }
    hate = np.array([r.hate for r in split.test])
    if hate.any():
        out["hate_recall_at_threshold"] = {str(t): float((p[hate] >= t).mean())
                                           for t in thresholds}
    return out


def write_artifact(directory: Path, params: FeatureParams, models: dict[str, LanguageModel],
                   training: dict[str, Any], *, default_language: str = "en") -> str:
    """``classifier.json`` + ``weights_<lang>.npy`` (+ ``NOTICE``) in ``directory``; returns the
    manifest's sha256 (the value to pin)."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = {}
    for lang, model in sorted(models.items()):
        path = directory / f"weights_{lang}.npy"
        np.save(path, model.weights.astype(np.float32), allow_pickle=False)
        entries[lang] = {
            "weights_file": path.name, "weights_sha256": sha256_file(path),
            "intercept": model.intercept,
            "calibration": {"method": "platt", "a": model.calib_a, "b": model.calib_b},
            "trained_on": LANGUAGE_DATASET.get(lang),
        }
    manifest = {
        "format": FORMAT, "name": NAME, "default_language": default_language,
        "routing": "zh when the text holds a CJK ideograph (U+3400-4DBF, U+4E00-9FFF, "
                   "U+F900-FAFF), else the default language",
        "features": {"ngram_min": params.ngram_min, "ngram_max": params.ngram_max,
                     "hash_bits": params.hash_bits, "max_chars": params.max_chars,
                     "hashing": "policy.classifier_features.hashed_ngrams (FNV-1a over code "
                                "points + splitmix64, L2-normalized counts)"},
        "models": entries,
        "training": training,
    }
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, ensure_ascii=False)
                                           + "\n", encoding="utf-8")
    (directory / "NOTICE").write_text(NOTICE, encoding="utf-8")
    return sha256_file(directory / MANIFEST_FILE)


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _joint_comparison(splits: dict[str, SplitData], params: FeatureParams,
                      c: float) -> dict[str, Any]:
    train = [r for s in splits.values() for r in s.train]
    lr = LogisticRegression(C=c, max_iter=5000, random_state=SEED).fit(
        feature_matrix([r.text for r in train], params), np.array([r.abusive for r in train]))
    out = {}
    for lang, split in splits.items():
        x = feature_matrix([r.text for r in split.test], params)
        p = lr.predict_proba(x)[:, 1]
        m = binary_metrics(np.array([r.abusive for r in split.test]), p, 0.5)
        out[lang] = {"roc_auc": round(m.roc_auc, 4), "pr_auc": round(m.pr_auc, 4),
                     "f1_at_0.5_uncalibrated": round(m.f1, 4)}
    return {"C": c, "held_out": out}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="artifact directory to (re)write")
    ap.add_argument("--evaldata", type=Path, default=None,
                    help="the evaldata root (default ../shared/evaldata next to the checkout)")
    ap.add_argument("--hash-bits", type=int, default=18)
    ap.add_argument("--ngram-max", type=int, default=4)
    ap.add_argument("--c-grid", default="4,16,64", help="comma-separated C values to try")
    ap.add_argument("--compare-joint", action="store_true",
                    help="also fit one bilingual model and record its held-out numbers")
    args = ap.parse_args(argv)
    params = FeatureParams(hash_bits=args.hash_bits, ngram_max=args.ngram_max)
    c_grid = [float(c) for c in args.c_grid.split(",")]
    splits = {lang: load_split(key, args.evaldata) for lang, key in LANGUAGE_DATASET.items()}
    models: dict[str, LanguageModel] = {}
    per_language: dict[str, Any] = {}
    for lang, split in splits.items():
        model, chosen = fit_language_model(lang, split.train, split.calibration, params, c_grid)
        models[lang] = model
        thresholds = sorted({0.5, 0.7, 0.9, chosen["f1_best_threshold_on_calibration"]})
        info = split.info
        per_language[lang] = {
            "dataset": info.key, "licence": info.licence, "citation": info.citation,
            "label_mapping": info.label_mapping, "split": info.split,
            "n": {part: len(getattr(split, part)) for part in ("train", "calibration", "test")},
            "abusive": {part: sum(r.abusive for r in getattr(split, part))
                        for part in ("train", "calibration", "test")},
            **chosen,
            "held_out": held_out_metrics(model, split, params, thresholds),
        }
        print(f"{lang}: C={chosen['C']} held-out "
              f"{per_language[lang]['held_out']['at_threshold']['0.5']}", file=sys.stderr)
    training: dict[str, Any] = {
        "command": "python -m policy.train_classifier "
                   + " ".join(sys.argv[1:] if argv is None else argv),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(), "seed": SEED, "scikit_learn": sklearn.__version__,
        "model": "LogisticRegression (L2, lbfgs) per language + Platt calibration",
        "languages": per_language,
    }
    if args.compare_joint:
        training["joint_model_comparison"] = _joint_comparison(
            splits, params, float(np.median([per_language[k]["C"] for k in per_language])))
    sha = write_artifact(args.out, params, models, training)
    print(f"wrote {args.out}; manifest sha256 {sha} (pin it as BUILTIN_MANIFEST_SHA256 in "
          "policy/classifier.py when this is the builtin model)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
