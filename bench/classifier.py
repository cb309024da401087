"""Held-out quality, calibration and latency of the policy text classifier.

``python -m bench.classifier --out bench/RESULTS.md [--model builtin|DIR]`` loads the classifier
exactly as the pipeline would (``policy.classifier.load_classifier``), scores every text of each
dataset's held-out split (:mod:`policy.classifier_data`: COLD ``dev.csv``; 20 % of Davidson)
one call at a time, and rewrites only the ``## Policy classifier (held-out)`` section of
``--out``. Needs the ``train`` extra (scikit-learn, for ROC/PR-AUC) and ``../shared/evaldata``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from bench.sections import replace_section
from policy.classifier import HashedNgramClassifier, LanguageModel, load_classifier
from policy.classifier_data import DATASETS, load_split
from policy.classifier_eval import binary_metrics, reliability
from policy.classifier_features import hashed_ngrams

SECTION_HEADING = "## Policy classifier (held-out)"
THRESHOLDS = (0.5, 0.7, 0.9)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(model_spec: str) -> str:
    classifier = load_classifier(model_spec)
    if not isinstance(classifier, HashedNgramClassifier):
        raise SystemExit(f"--model {model_spec!r} gives no measurable classifier")
    load1 = os.getloadavg()[0]
    out = [
        SECTION_HEADING, "",
        f"Command: `python -m bench.classifier --out bench/RESULTS.md --model {model_spec}`  ",
        f"Model: `{classifier.model_id}` (hashed char {classifier.params.ngram_min}-"
        f"{classifier.params.ngram_max}-grams, 2^{classifier.params.hash_bits} buckets, "
        "logistic regression per language + Platt calibration; artifact "
        "`policy/models/builtin`, trained by `python -m policy.train_classifier --out "
        "policy/models/builtin --compare-joint`)  ",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}; commit "
        f"{_commit()}; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; load (1 min) at start "
        f"{load1:.2f}", "",
        "Each held-out text is scored alone through `TextClassifier.score` (normalize, hash, "
        "dot product, calibration: the runtime path). English model trained only on Davidson "
        "et al. 2017 (MIT; hate + offensive -> abusive, neither -> not; labeled_data.csv is an "
        "80 % sample, cut 70/10/20 train/calibration/test, stratified by class, seed 20261121; "
        "tweet debris -- entities, RT, @user, URLs -- removed). Chinese model trained only on "
        "COLD (Apache-2.0; train.csv cut 90/10 train/calibration; **dev.csv is the held-out "
        "test**, COLD's own test split is not in the evaldata). Probabilities are calibrated to "
        "each dataset's own base rate (Davidson 83 % abusive, COLD 50 %): in a room where abuse "
        "is rare the same threshold gives lower precision than below. *ECE before Platt* is the "
        "logistic regression's own probabilities: the Platt map (fitted on the calibration "
        "split) helps Chinese and slightly hurts English, whose LR was already calibrated.", "",
        "| dataset | lang | n (abusive) | threshold | precision | recall | F1 | ROC-AUC | "
        "PR-AUC | Brier | ECE (10 bins) | ECE before Platt |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    reliability_lines: list[str] = []
    latencies: list[float] = []
    hate_lines: list[str] = []
    for key, info in DATASETS.items():
        split = load_split(key)
        texts = [r.text for r in split.test]
        y = np.array([r.abusive for r in split.test])
        p = np.empty(len(texts))
        routed_ok = 0
        for i, text in enumerate(texts):
            t0 = time.perf_counter()
            verdict = classifier.score(text)
            latencies.append(time.perf_counter() - t0)
            p[i] = verdict.probability
            routed_ok += verdict.language == info.language
        uncal = _uncalibrated(classifier, info.language, texts)
        ece_before = binary_metrics(y, uncal, 0.5).ece
        for t in THRESHOLDS:
            m = binary_metrics(y, p, t)
            out.append(f"| {key} ({info.licence}) | {info.language} | {m.n} ({m.positives}) | "
                       f"{t:.1f} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | "
                       f"{m.roc_auc:.4f} | {m.pr_auc:.4f} | {m.brier:.4f} | {m.ece:.4f} | "
                       f"{ece_before:.4f} |")
        hate = np.array([r.hate for r in split.test])
        if hate.any():
            hate_lines.append(
                f"- {key}: recall on the {int(hate.sum())} *hate speech* (class 0) test tweets: "
                + ", ".join(f"{(p[hate] >= t).mean():.3f} at {t:.1f}" for t in THRESHOLDS) + ".")
        hate_lines.append(f"- {key}: {routed_ok}/{len(texts)} test texts routed to the "
                          f"`{info.language}` model by the CJK rule.")
        bins = reliability(y, p)
        reliability_lines.append(
            f"| {key} | " + " | ".join(
                f"{b.n}: {b.mean_probability:.2f}/{b.observed_rate:.2f}" if b.n else "0"
                for b in bins) + " |")
    lat_us = np.array(latencies) * 1e6
    out += ["", *hate_lines, "",
            "Reliability (10 equal-width bins of calibrated P(abusive); each cell *n: mean "
            "predicted / observed abusive rate*):", "",
            "| dataset | " + " | ".join(f"{b / 10:.1f}-{(b + 1) / 10:.1f}" for b in range(10))
            + " |", "|---|" + "---|" * 10, *reliability_lines, "",
            f"Latency of one `score(text)` call over all {len(lat_us)} held-out texts (one "
            "thread, numpy only, no scikit-learn at inference): "
            f"p50 {np.percentile(lat_us, 50):.0f} us, p99 {np.percentile(lat_us, 99):.0f} us, "
            f"max {lat_us.max():.0f} us; throughput "
            f"{len(lat_us) / (lat_us.sum() / 1e6):,.0f} texts/s on one core. Load (1 min) at end "
            f"{os.getloadavg()[0]:.2f} on a shared 2-core machine."]
    return "\n".join(out) + "\n"


def _uncalibrated(classifier: HashedNgramClassifier, language: str,
                  texts: list[str]) -> np.ndarray:
    """The logistic regression's own probabilities (Platt map off), for the ECE comparison."""
    m = classifier.models[language]
    raw = LanguageModel(language, m.weights, m.intercept, 1.0, 0.0)
    return np.array([raw.probability(*hashed_ngrams(t, classifier.params)) for t in texts])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="results file whose classifier section is rewritten (else stdout)")
    ap.add_argument("--model", default="builtin", help="builtin, or an artifact directory")
    args = ap.parse_args()
    section = run(args.model)
    if args.out is None:
        print(section)
        return 0
    document = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    args.out.write_text(replace_section(document, section, SECTION_HEADING), encoding="utf-8")
    print(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
