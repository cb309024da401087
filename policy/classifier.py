"""Text classifiers that give a transcript a calibrated probability of being abusive.

``TextClassifier`` is the seam (``score(text) -> ClassifierOutput``); ``load_classifier(spec)``
resolves the setting that picks one:

- ``"none"``: no classifier (``None``);
- ``"builtin"``: the model shipped in ``policy/models/builtin`` (pinned by the sha256 of its
  manifest, :data:`BUILTIN_MANIFEST_SHA256`);
- a directory path: any artifact of the same format (e.g. one retrained with
  ``python -m policy.train_classifier --out DIR``), optionally pinned with ``expected_sha256``.

The shipped implementation, :class:`HashedNgramClassifier`, is a logistic regression over hashed
character 1-4-grams (:mod:`policy.classifier_features`), one model per language -- English
(trained on Davidson et al. 2017, MIT) and Chinese (COLD, Apache-2.0) -- routed by script (any
CJK ideograph -> ``zh``, else ``en``), each followed by a Platt (sigmoid) map fitted on a held-out
calibration split. Scoring is numpy only (tens of microseconds a transcript); an artifact is
JSON + ``.npy`` arrays loaded with ``allow_pickle=False`` -- never a pickle, which would be code --
and every array is checked against the sha256 its manifest records before it is used.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from policy.classifier_features import FeatureParams, has_cjk, hashed_ngrams

__all__ = [
    "BUILTIN_DIR",
    "BUILTIN_MANIFEST_SHA256",
    "FORMAT",
    "MANIFEST_FILE",
    "ClassifierError",
    "ClassifierIntegrityError",
    "ClassifierOutput",
    "HashedNgramClassifier",
    "LanguageModel",
    "TextClassifier",
    "load_classifier",
    "sha256_file",
]

FORMAT = "roomwarden-text-classifier/1"
"""The manifest's ``format``; a loader refuses any other."""
MANIFEST_FILE = "classifier.json"
BUILTIN_DIR = Path(__file__).resolve().parent / "models" / "builtin"
BUILTIN_MANIFEST_SHA256 = "1ecaec7f5e093b40e55a01f780558f2226a61c973af723876217cc1ec01a50ad"
"""sha256 of ``policy/models/builtin/classifier.json`` (which pins its weight files in turn).
``python -m policy.train_classifier`` prints the new value after a retrain."""

Label = Literal["abusive", "ok"]


class ClassifierError(Exception):
    """An artifact is missing, malformed or of an unknown format (the message names the file
    and the field)."""


class ClassifierIntegrityError(ClassifierError):
    """A file of an artifact does not have the sha256 it is pinned to; it is not loaded."""


@dataclass(frozen=True, slots=True)
class ClassifierOutput:
    """One verdict.

    Attributes:
        label: ``abusive`` when ``probability >= threshold`` of the classifier, else ``ok``.
        probability: calibrated P(abusive) in [0, 1] (calibrated on the training data's own
            distribution: a room with far less abuse than the datasets needs a higher threshold
            for the same precision).
        model_id: ``<name>@<first 12 hex of the manifest sha256>/<language>``.
        language: the language model that scored the text (``en`` / ``zh``).
    """

    label: Label
    probability: float
    model_id: str
    language: str

    @property
    def abusive(self) -> bool:
        return self.label == "abusive"


class TextClassifier(Protocol):
    """Anything that scores one transcript text. Must be fast (it runs inline, per transcript)
    and pure (no I/O per call)."""

    @property
    def model_id(self) -> str: ...

    def score(self, text: str) -> ClassifierOutput: ...


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class LanguageModel:
    """One language's linear model and its calibration map.

    ``P(abusive) = sigmoid(calib_a * (weights . x + intercept) + calib_b)``.
    """

    language: str
    weights: npt.NDArray[np.float32]
    intercept: float
    calib_a: float
    calib_b: float

    def probability(self, index: npt.NDArray[np.int64], values: npt.NDArray[np.float32]) -> float:
        margin = float(np.dot(self.weights[index], values)) + self.intercept
        z = self.calib_a * margin + self.calib_b
        # Stable sigmoid: never overflows math.exp for large |z|.
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)


class HashedNgramClassifier:
    """Per-language logistic regressions over hashed character n-grams (see module doc).

    Args:
        params: the feature hashing the models were trained with.
        models: language -> model; must hold ``default_language`` (and ``zh`` to route Chinese).
        name: the artifact's name; ``model_id`` adds the manifest hash and the language.
        threshold: P(abusive) at or above which ``label`` is ``abusive``.
        default_language: the model for text without CJK ideographs.
    """

    def __init__(self, params: FeatureParams, models: Mapping[str, LanguageModel], *,
                 name: str, threshold: float = 0.5, default_language: str = "en") -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"classifier threshold must be in [0, 1], got {threshold}")
        if default_language not in models:
            raise ValueError(f"no model for the default language {default_language!r}; "
                             f"have {sorted(models)}")
        for lang, model in models.items():
            if model.weights.shape != (params.n_features,):
                raise ValueError(f"model {lang!r}: weights shape {model.weights.shape}, "
                                 f"expected ({params.n_features},)")
        self.params = params
        self.models = dict(models)
        self.threshold = threshold
        self.default_language = default_language
        self._name = name

    @property
    def model_id(self) -> str:
        return self._name

    def language_of(self, text: str) -> str:
        if "zh" in self.models and has_cjk(text):
            return "zh"
        return self.default_language

    def probability(self, text: str) -> tuple[str, float]:
        """(language, calibrated P(abusive)) of ``text``."""
        lang = self.language_of(text)
        index, values = hashed_ngrams(text, self.params)
        return lang, self.models[lang].probability(index, values)

    def score(self, text: str) -> ClassifierOutput:
        lang, p = self.probability(text)
        return ClassifierOutput("abusive" if p >= self.threshold else "ok", p,
                                f"{self._name}/{lang}", lang)

    @classmethod
    def load(cls, directory: Path, *, expected_sha256: str | None = None,
             threshold: float = 0.5) -> HashedNgramClassifier:
        """The artifact in ``directory`` (``classifier.json`` + its ``.npy`` weights), each file
        verified by sha256 (the manifest against ``expected_sha256`` when given)."""
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"classifier threshold must be in [0, 1], got {threshold}")
        manifest_path = directory / MANIFEST_FILE
        if not manifest_path.is_file():
            raise ClassifierError(f"no classifier manifest at {manifest_path}")
        manifest_sha = sha256_file(manifest_path)
        if expected_sha256 is not None and manifest_sha != expected_sha256.lower():
            raise ClassifierIntegrityError(
                f"{manifest_path} has sha256 {manifest_sha}, expected {expected_sha256}; "
                "refusing to load it")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ClassifierError(f"{manifest_path}: not valid JSON ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else None
            raise ClassifierError(f"{manifest_path}: format is {found!r}, expected {FORMAT!r}")
        params = _feature_params(manifest_path, _field(manifest_path, manifest, "features", dict))
        entries = _field(manifest_path, manifest, "models", dict)
        models = {lang: _language_model(directory, manifest_path, lang, entry, params)
                  for lang, entry in entries.items()}
        name = str(_field(manifest_path, manifest, "name", str))
        default = str(manifest.get("default_language", "en"))
        try:
            return cls(params, models, name=f"{name}@{manifest_sha[:12]}", threshold=threshold,
                       default_language=default)
        except ValueError as exc:
            raise ClassifierError(f"{manifest_path}: {exc}") from exc


def _field(path: Path, obj: Mapping[str, Any], key: str, kind: type) -> Any:
    if key not in obj:
        raise ClassifierError(f"{path}: missing field {key!r}")
    value = obj[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ClassifierError(f"{path}: field {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _feature_params(path: Path, features: Mapping[str, Any]) -> FeatureParams:
    try:
        return FeatureParams(**{k: int(_field(path, features, k, int))
                                for k in ("ngram_min", "ngram_max", "hash_bits", "max_chars")})
    except ValueError as exc:
        raise ClassifierError(f"{path}: features: {exc}") from exc


def _language_model(directory: Path, manifest_path: Path, lang: str, entry: Any,
                    params: FeatureParams) -> LanguageModel:
    where = f"{manifest_path} models.{lang}"
    if not isinstance(entry, dict):
        raise ClassifierError(f"{where}: must be an object")
    file_name = _field(manifest_path, entry, "weights_file", str)
    if Path(file_name).name != file_name:
        raise ClassifierError(f"{where}: weights_file must be a bare file name, got {file_name!r}")
    weights_path = directory / file_name
    if not weights_path.is_file():
        raise ClassifierError(f"{where}: weights file {weights_path} not found")
    pinned = str(_field(manifest_path, entry, "weights_sha256", str)).lower()
    actual = sha256_file(weights_path)
    if actual != pinned:
        raise ClassifierIntegrityError(
            f"{weights_path} has sha256 {actual}, but {where} pins {pinned}; refusing to load it")
    try:
        weights = np.load(weights_path, allow_pickle=False)
    except ValueError as exc:
        raise ClassifierError(f"{weights_path}: not a plain .npy array ({exc})") from exc
    if weights.dtype != np.float32 or weights.shape != (params.n_features,):
        raise ClassifierError(f"{weights_path}: expected float32 of shape ({params.n_features},), "
                              f"got {weights.dtype} {weights.shape}")
    calibration = _field(manifest_path, entry, "calibration", dict)
    if calibration.get("method") != "platt":
        raise ClassifierError(f"{where}.calibration.method must be 'platt', "
                              f"got {calibration.get('method')!r}")
    return LanguageModel(
        language=lang, weights=weights,
        intercept=float(_field(manifest_path, entry, "intercept", float)),
        calib_a=float(_field(manifest_path, calibration, "a", float)),
        calib_b=float(_field(manifest_path, calibration, "b", float)))


def load_classifier(spec: str, *, threshold: float = 0.5,
                    expected_sha256: str | None = None) -> TextClassifier | None:
    """The classifier a setting names: ``"none"`` -> None, ``"builtin"`` -> the shipped model
    (pinned by :data:`BUILTIN_MANIFEST_SHA256`), anything else -> the artifact directory at that
    path (pinned by ``expected_sha256`` when given)."""
    spec = spec.strip()
    if spec.lower() == "none" or spec == "":
        return None
    if spec.lower() == "builtin":
        return HashedNgramClassifier.load(BUILTIN_DIR, threshold=threshold,
                                          expected_sha256=BUILTIN_MANIFEST_SHA256)
    directory = Path(spec).expanduser()
    if not directory.is_dir():
        raise ClassifierError(f"policy classifier {spec!r} is neither 'builtin', 'none' nor a "
                              "directory holding classifier.json")
    return HashedNgramClassifier.load(directory, threshold=threshold,
                                      expected_sha256=expected_sha256)
