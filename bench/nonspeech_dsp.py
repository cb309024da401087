"""Signal helpers for the non-speech generator (:mod:`bench.nonspeech_sounds`): levels,
frequency-domain filtering, envelopes. numpy only; float samples at 16 kHz, full scale 1.0."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["SAMPLE_RATE", "Rng", "at_peak", "at_rms", "band", "colored", "db", "envelope",
           "n_samples", "place", "shaped", "times"]

SAMPLE_RATE = 16_000
"""What the pipeline works in after decoding (16 kHz mono)."""
Rng = np.random.Generator


def db(dbfs: float) -> float:
    """dBFS -> linear amplitude."""
    return float(10.0 ** (dbfs / 20.0))


def at_rms(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale ``x`` to the given RMS level (dBFS)."""
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    return x if rms == 0.0 else x * (db(dbfs) / rms)


def at_peak(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale ``x`` so its peak is at the given level (dBFS)."""
    peak = float(np.max(np.abs(x)))
    return x if peak == 0.0 else x * (db(dbfs) / peak)


def n_samples(seconds: float) -> int:
    """Samples in ``seconds``."""
    return round(seconds * SAMPLE_RATE)


def times(seconds: float) -> np.ndarray:
    """Sample times (s) of ``seconds`` of audio."""
    return np.arange(n_samples(seconds)) / SAMPLE_RATE


def shaped(noise: np.ndarray, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Filter ``noise`` in the frequency domain by ``gain(frequency_hz)`` (zero phase)."""
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(len(noise), 1.0 / SAMPLE_RATE)
    return np.fft.irfft(spectrum * gain(freqs), n=len(noise))


def band(lo: float, hi: float) -> Callable[[np.ndarray], np.ndarray]:
    """A smooth band-pass (raised-cosine skirts of one octave)."""

    def gain(f: np.ndarray) -> np.ndarray:
        g = np.ones_like(f)
        with np.errstate(divide="ignore"):
            lo_oct = np.log2(np.maximum(f, 1e-3) / lo)
            hi_oct = np.log2(np.maximum(f, 1e-3) / hi)
        g = np.where(lo_oct < 0, 0.5 + 0.5 * np.cos(np.pi * np.clip(-lo_oct, 0, 1)), g)
        g = np.where(hi_oct > 0, g * (0.5 + 0.5 * np.cos(np.pi * np.clip(hi_oct, 0, 1))), g)
        return g

    return gain


def colored(rng: Rng, seconds: float, exponent: float) -> np.ndarray:
    """Noise with power falling as 1/f**exponent (0 white, 1 pink, 2 brown), 20 Hz high-pass."""
    white = rng.standard_normal(n_samples(seconds))
    return shaped(white, lambda f: np.where(f < 20.0, 0.0, np.maximum(f, 20.0) ** (-exponent / 2)))


def envelope(n: int, attack: int, decay_tau: float) -> np.ndarray:
    """Linear attack of ``attack`` samples then exponential decay (tau in samples)."""
    env = np.exp(-np.arange(n) / max(decay_tau, 1.0))
    if attack > 0:
        env[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False)
    return env


def place(out: np.ndarray, burst: np.ndarray, at: int) -> None:
    """Add ``burst`` into ``out`` from sample ``at`` (cut at the end of ``out``)."""
    end = min(len(out), at + len(burst))
    if at < end:
        out[at:end] += burst[: end - at]
