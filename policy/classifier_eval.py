"""Held-out metrics of a probabilistic binary classifier (training script and benchmark only:
imports scikit-learn, which the runtime does not need)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = ["BinaryMetrics", "ReliabilityBin", "binary_metrics", "best_f1_threshold",
           "reliability"]


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    low: float
    high: float
    n: int
    mean_probability: float
    observed_rate: float


@dataclass(frozen=True, slots=True)
class BinaryMetrics:
    threshold: float
    n: int
    positives: int
    precision: float
    recall: float
    f1: float
    roc_auc: float
    pr_auc: float
    """Average precision (area under the precision-recall curve, step-wise)."""
    brier: float
    ece: float
    """Expected calibration error over 10 equal-width probability bins (weighted by bin size)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def reliability(y: npt.NDArray[np.bool_], p: npt.NDArray[np.float64],
                bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1] (the last one closed): mean predicted vs observed rate."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        out.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), n,
                                  float(p[sel].mean()) if n else float("nan"),
                                  float(y[sel].mean()) if n else float("nan")))
    return out


def binary_metrics(y: Sequence[bool] | npt.NDArray[np.bool_], p: Sequence[float] | npt.NDArray[
        np.float64], threshold: float = 0.5) -> BinaryMetrics:
    yy = np.asarray(y, dtype=bool)
    pp = np.asarray(p, dtype=np.float64)
    pred = pp >= threshold
    tp = int((pred & yy).sum())
    fp = int((pred & ~yy).sum())
    fn = int((~pred & yy).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    ece = sum(b.n * abs(b.mean_probability - b.observed_rate)
              for b in reliability(yy, pp) if b.n) / len(yy)
    return BinaryMetrics(threshold, len(yy), int(yy.sum()), precision, recall, f1,
                         float(roc_auc_score(yy, pp)), float(average_precision_score(yy, pp)),
                         float(np.mean((pp - yy) ** 2)), float(ece))


def best_f1_threshold(y: npt.NDArray[np.bool_], p: npt.NDArray[np.float64]) -> float:
    """The threshold (on a 0.01 grid) with the best F1 -- chosen on calibration data, never on
    the test set."""
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    scores = [binary_metrics(y, p, float(t)).f1 for t in grid]
    return float(grid[int(np.argmax(scores))])
