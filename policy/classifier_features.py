"""Hashed character n-gram features of a text, in pure numpy (shared by training and inference).

Training (``policy.train_classifier``) and scoring (``policy.classifier``) call the same
:func:`hashed_ngrams`, so a shipped model sees exactly the features it was trained on and needs
neither scikit-learn nor a pickle at run time.

Text is normalized first (:func:`normalize_for_features`): NFKC (full-width to half-width),
case-folded, every run of characters that is not a letter or digit becomes one space. The
n-grams (``ngram_min``..``ngram_max`` code points) are taken over `` <text> `` -- the padding
marks word starts and ends, as scikit-learn's ``char_wb`` does; unlike ``char_wb`` n-grams may
span a space, which keeps short word pairs ("f u") as features. Chinese has no spaces, so its
n-grams are character 1..4-grams of each clause.

Each n-gram is hashed from its code points (FNV-1a over 32-bit code points, seeded by the length,
finished with the splitmix64 mixer) into ``2**hash_bits`` buckets, vectorized over the whole text:
about 20-60 us for a transcript-sized text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FeatureParams", "hashed_ngrams", "has_cjk", "normalize_for_features"]

_NON_ALNUM = re.compile(r"[\W_]+")
# CJK Unified Ideographs (+ extension A) and the compatibility block: enough to tell a Chinese
# transcript from an English one (ASR output is one language per segment).
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True, slots=True)
class FeatureParams:
    """How text becomes a feature vector (stored in each model's manifest).

    Attributes:
        ngram_min: shortest character n-gram (code points).
        ngram_max: longest character n-gram.
        hash_bits: the vector has ``2**hash_bits`` buckets (18 -> 262,144: a 1 MiB float32
            weight vector per model; collisions cost little at these data sizes).
        max_chars: longer texts are cut to their first ``max_chars`` characters after
            normalization (bounds the cost of one call; a transcript segment is at most ~15 s
            of speech, a few hundred characters).
    """

    ngram_min: int = 1
    ngram_max: int = 4
    hash_bits: int = 18
    max_chars: int = 2000

    def __post_init__(self) -> None:
        if not 1 <= self.ngram_min <= self.ngram_max <= 8:
            raise ValueError(f"need 1 <= ngram_min <= ngram_max <= 8, got "
                             f"{self.ngram_min}..{self.ngram_max}")
        if not 8 <= self.hash_bits <= 24:
            raise ValueError(f"hash_bits must be 8..24, got {self.hash_bits}")
        if self.max_chars < 1:
            raise ValueError(f"max_chars must be >= 1, got {self.max_chars}")

    @property
    def n_features(self) -> int:
        return 1 << self.hash_bits


def normalize_for_features(text: str) -> str:
    """NFKC, case-folded, non-alphanumeric runs collapsed to single spaces, stripped."""
    return _NON_ALNUM.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def has_cjk(text: str) -> bool:
    """True when ``text`` holds at least one CJK ideograph (routes it to the Chinese model)."""
    return _CJK.search(text) is not None


def _mix(h: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    # splitmix64 finalizer: spreads FNV's weak low bits before the bucket mask.
    h = (h ^ (h >> np.uint64(30))) * _MIX_1
    h = (h ^ (h >> np.uint64(27))) * _MIX_2
    return h ^ (h >> np.uint64(31))


def hashed_ngrams(
    text: str, params: FeatureParams
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The text's feature vector as sorted unique bucket indexes and their L2-normalized counts.

    An empty (or all-punctuation) text gives two empty arrays.
    """
    norm = normalize_for_features(text)[: params.max_chars]
    if not norm:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    padded = f" {norm} "
    cps = np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    length = cps.shape[0]
    mask = np.uint64(params.n_features - 1)
    parts: list[npt.NDArray[np.uint64]] = []
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        h = np.full(length, _FNV_OFFSET, dtype=np.uint64)
        for n in range(1, params.ngram_max + 1):
            count = length - n + 1
            if count <= 0:
                break
            # h[i] holds the FNV state of cps[i : i + n] after this step.
            h = (h[:count] ^ cps[n - 1 : n - 1 + count]) * _FNV_PRIME
            if n >= params.ngram_min:
                parts.append(_mix(h ^ np.uint64(n)) & mask)
    buckets = np.concatenate(parts).astype(np.int64)
    index, counts = np.unique(buckets, return_counts=True)
    values = counts.astype(np.float32)
    values /= np.float32(np.sqrt(np.dot(values, values)))
    return index, values
