"""Deterministic non-speech audio: about ten minutes of silence, noise, hum, transients, music
and tones at 16 kHz mono, none of it speech (real or synthesized).

Used by :mod:`bench.nonspeech` (issue 4: "10 minutes of silence, noise, music and non-speech
through the pipeline: 0 confident transcripts and 0 alerts"). Everything is numpy from one seed,
so the same seed gives the same samples on every machine; no recordings, no TTS.

The sounds are grouped into a few files, one per simulated "speaker" (a room participant whose
microphone hears only this), each sound separated from the next by :data:`GAP_S` of digital
silence so VAD segments close between sounds and every segment belongs to one sound.

Levels are RMS in dB relative to full scale (1.0). For scale: the sample room's speech sits at
about -20 dBFS RMS, a quiet room's microphone floor at -60 to -70.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
GAP_S = 1.0
"""Digital silence between two sounds in a file: longer than the VAD's 0.45 s hangover, so a
segment never spans two sounds (attribution of a segment to a sound stays exact)."""

Rng = np.random.Generator


def _db(dbfs: float) -> float:
    return float(10.0 ** (dbfs / 20.0))


def _at_rms(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale ``x`` to the given RMS level (dBFS)."""
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    return x if rms == 0.0 else x * (_db(dbfs) / rms)


def _at_peak(x: np.ndarray, dbfs: float) -> np.ndarray:
    peak = float(np.max(np.abs(x)))
    return x if peak == 0.0 else x * (_db(dbfs) / peak)


def _n(seconds: float) -> int:
    return round(seconds * SAMPLE_RATE)


def _t(seconds: float) -> np.ndarray:
    return np.arange(_n(seconds)) / SAMPLE_RATE


def _shaped(noise: np.ndarray, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Filter ``noise`` in the frequency domain by ``gain(frequency_hz)`` (zero phase)."""
    spectrum = np.fft.rfft(noise)
    freqs = np.fft.rfftfreq(len(noise), 1.0 / SAMPLE_RATE)
    return np.fft.irfft(spectrum * gain(freqs), n=len(noise))


def _band(lo: float, hi: float) -> Callable[[np.ndarray], np.ndarray]:
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


def _colored(rng: Rng, seconds: float, exponent: float) -> np.ndarray:
    """Noise with power falling as 1/f**exponent (0 white, 1 pink, 2 brown), 20 Hz high-pass."""
    white = rng.standard_normal(_n(seconds))
    return _shaped(white, lambda f: np.where(f < 20.0, 0.0, np.maximum(f, 20.0) ** (-exponent / 2)))


def _envelope(n: int, attack: int, decay_tau: float) -> np.ndarray:
    """Linear attack of ``attack`` samples then exponential decay (tau in samples)."""
    env = np.exp(-np.arange(n) / max(decay_tau, 1.0))
    if attack > 0:
        env[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False)
    return env


def _place(out: np.ndarray, burst: np.ndarray, at: int) -> None:
    end = min(len(out), at + len(burst))
    if at < end:
        out[at:end] += burst[: end - at]


# -- the sounds: each (rng, seconds) -> float samples in [-1, 1] ---------------------------------

def digital_silence(rng: Rng, seconds: float) -> np.ndarray:
    return np.zeros(_n(seconds))


def hiss(rng: Rng, seconds: float) -> np.ndarray:
    """A quiet microphone's self-noise: white, -70 dBFS RMS (about 10 LSB)."""
    return _at_rms(rng.standard_normal(_n(seconds)), -70.0)


def _levels(rng: Rng, seconds: float, exponent: float) -> np.ndarray:
    # Three levels, quiet to loud: a fan across the room, an air conditioner, a loud hiss.
    third = seconds / 3
    return np.concatenate([_at_rms(_colored(rng, third, exponent), level)
                           for level in (-50.0, -35.0, -20.0)])


def white_noise(rng: Rng, seconds: float) -> np.ndarray:
    return _levels(rng, seconds, 0.0)


def pink_noise(rng: Rng, seconds: float) -> np.ndarray:
    return _levels(rng, seconds, 1.0)


def brown_noise(rng: Rng, seconds: float) -> np.ndarray:
    return _levels(rng, seconds, 2.0)


def _hum(rng: Rng, seconds: float, mains_hz: float) -> np.ndarray:
    t = _t(seconds)
    # A ground loop: the fundamental plus odd-heavy harmonics, and a little hiss under it.
    amps = {1: 1.0, 2: 0.3, 3: 0.5, 4: 0.1, 5: 0.25, 7: 0.12, 9: 0.06}
    x = sum(a * np.sin(2 * np.pi * k * mains_hz * t + rng.uniform(0, 2 * np.pi))
            for k, a in amps.items())
    return _at_rms(np.asarray(x), -25.0) + _at_rms(rng.standard_normal(len(t)), -60.0)


def mains_hum_50hz(rng: Rng, seconds: float) -> np.ndarray:
    return _hum(rng, seconds, 50.0)


def mains_hum_60hz(rng: Rng, seconds: float) -> np.ndarray:
    return _hum(rng, seconds, 60.0)


def clicks(rng: Rng, seconds: float) -> np.ndarray:
    """Mouse clicks and pops: 2-8 ms broadband bursts at random times, about 3 per second."""
    out = np.zeros(_n(seconds))
    for at in np.sort(rng.integers(0, len(out), size=int(3 * seconds))):
        n = int(rng.integers(32, 128))
        burst = rng.standard_normal(n) * _envelope(n, 2, n / 5)
        _place(out, _at_peak(burst, rng.uniform(-20.0, -6.0)), int(at))
    return out


def keyboard(rng: Rng, seconds: float) -> np.ndarray:
    """Typing: key strikes in bursts (words) with pauses, each a click on a damped resonance."""
    out = np.zeros(_n(seconds))
    t = 0.2
    while t < seconds - 0.3:
        for _ in range(int(rng.integers(3, 9))):  # one typed word
            n = _n(0.04)
            f0 = rng.uniform(1500.0, 4000.0)
            body = np.sin(2 * np.pi * f0 * np.arange(n) / SAMPLE_RATE)
            strike = (0.6 * rng.standard_normal(n) + body) * _envelope(n, 8, n / 8)
            _place(out, _at_peak(strike, rng.uniform(-22.0, -10.0)), _n(t))
            t += rng.uniform(0.08, 0.22)
        t += rng.uniform(0.3, 1.2)
    return out + _at_rms(rng.standard_normal(len(out)), -65.0)


def breathing(rng: Rng, seconds: float) -> np.ndarray:
    """Breaths close to a microphone: band-passed noise swelling and fading, inhale/exhale."""
    out = np.zeros(_n(seconds))
    t = 0.3
    inhale = True
    while t < seconds - 1.5:
        dur = rng.uniform(0.8, 1.6)
        n = _n(dur)
        lo, hi = (500.0, 3500.0) if inhale else (200.0, 2000.0)
        noise = _shaped(rng.standard_normal(n), _band(lo, hi))
        env = np.sin(np.pi * np.arange(n) / n) ** 2
        _place(out, _at_rms(noise * env, rng.uniform(-40.0, -28.0)), _n(t))
        t += dur + rng.uniform(0.2, 1.0)
        inhale = not inhale
    return out


def coughs_claps(rng: Rng, seconds: float) -> np.ndarray:
    """Coughs (a sharp noise burst with a low chest resonance), single claps and applause."""
    out = np.zeros(_n(seconds))
    half = seconds / 2
    t = 0.3
    while t < half - 0.6:  # coughs, sometimes in twos and threes
        for _ in range(int(rng.integers(1, 4))):
            n = _n(rng.uniform(0.15, 0.35))
            noise = _shaped(rng.standard_normal(n), _band(150.0, 3000.0))
            chest = np.sin(2 * np.pi * rng.uniform(90.0, 160.0) * np.arange(n) / SAMPLE_RATE)
            burst = (noise + 0.4 * chest) * _envelope(n, _n(0.01), n / 4)
            _place(out, _at_peak(burst, rng.uniform(-12.0, -4.0)), _n(t))
            t += n / SAMPLE_RATE + rng.uniform(0.1, 0.3)
        t += rng.uniform(1.0, 2.5)
    while t < seconds - 0.2:  # claps: single ones, then applause (dense, overlapping)
        dense = t > half + (seconds - half) / 2
        n = _n(0.03)
        clap = _shaped(rng.standard_normal(n), _band(800.0, 5000.0)) * _envelope(n, 4, n / 6)
        _place(out, _at_peak(clap, rng.uniform(-14.0, -6.0)), _n(t))
        t += rng.uniform(0.02, 0.08) if dense else rng.uniform(0.3, 1.5)
    return out


# -- music ---------------------------------------------------------------------------------------

_A4 = 440.0
_SCALE = (0, 2, 4, 5, 7, 9, 11, 12)  # major scale, semitones above the tonic


def _note_hz(semitones_from_a4: float) -> float:
    return _A4 * 2.0 ** (semitones_from_a4 / 12.0)


def _adsr(n: int, a: float = 0.01, d: float = 0.08, s: float = 0.6, r: float = 0.1) -> np.ndarray:
    na, nd, nr = _n(a), _n(d), _n(r)
    ns = max(0, n - na - nd - nr)
    env = np.concatenate([np.linspace(0, 1, na, endpoint=False),
                          np.linspace(1, s, nd, endpoint=False),
                          np.full(ns, s), np.linspace(s, 0, nr)])
    return env[:n] if len(env) >= n else np.pad(env, (0, n - len(env)))


def _melody(rng: Rng, seconds: float, wave: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    out = np.zeros(_n(seconds))
    t, tonic = 0.0, float(rng.integers(-12, 3))
    while t < seconds - 0.5:
        dur = float(rng.choice([0.125, 0.25, 0.25, 0.5, 0.75]))
        f = _note_hz(tonic + _SCALE[int(rng.integers(0, len(_SCALE)))])
        n = _n(dur)
        phase = 2 * np.pi * f * np.arange(n) / SAMPLE_RATE
        _place(out, wave(phase) * _adsr(n), _n(t))
        t += dur
    return _at_rms(out, -20.0)


def melody_sine(rng: Rng, seconds: float) -> np.ndarray:
    return _melody(rng, seconds, np.sin)


def melody_square(rng: Rng, seconds: float) -> np.ndarray:
    return _melody(rng, seconds, lambda p: np.sign(np.sin(p)) * 0.5)


def _tone(f: float, n: int, harmonics: int = 6) -> np.ndarray:
    """A string-ish tone: harmonics falling as 1/k, phase-locked."""
    ph = 2 * np.pi * f * np.arange(n) / SAMPLE_RATE
    return np.asarray(sum(np.sin(k * ph) / k for k in range(1, harmonics + 1)
                          if k * f < SAMPLE_RATE / 2))


def chords(rng: Rng, seconds: float) -> np.ndarray:
    """A I-V-vi-IV progression of triads with harmonics and envelopes, one chord per ~2 s."""
    out = np.zeros(_n(seconds))
    roots = (0, 7, 9, 5)
    t, i = 0.0, 0
    while t < seconds - 0.5:
        dur = float(rng.choice([1.5, 2.0, 2.5]))
        n = _n(dur)
        root = roots[i % 4] - 9
        third = 3 if roots[i % 4] == 9 else 4
        chord = sum(_tone(_note_hz(root + iv), n) for iv in (0, third, 7, 12))
        _place(out, np.asarray(chord) * _adsr(n, a=0.03, d=0.3, s=0.5, r=0.4), _n(t))
        t, i = t + dur, i + 1
    return _at_rms(out, -20.0)


def _drum_pattern(rng: Rng, seconds: float, bpm: float = 100.0) -> np.ndarray:
    out = np.zeros(_n(seconds))
    step = 60.0 / bpm / 4  # sixteenth notes
    kick_n, snare_n, hat_n = _n(0.25), _n(0.18), _n(0.05)
    k = np.arange(kick_n) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * (50 * k + 60 * (1 - np.exp(-k * 30)) / 30)) * _envelope(
        kick_n, 8, kick_n / 4)
    for i in range(int(seconds / step)):
        at, pos = _n(i * step), i % 16
        if pos in (0, 8) or (pos == 10 and rng.random() < 0.5):
            _place(out, kick * 0.9, at)
        if pos in (4, 12):
            snare = (_shaped(rng.standard_normal(snare_n), _band(1000.0, 6000.0))
                     + 0.5 * np.sin(2 * np.pi * 190 * np.arange(snare_n) / SAMPLE_RATE))
            _place(out, _at_peak(snare * _envelope(snare_n, 4, snare_n / 5), -6.0), at)
        if pos % 2 == 0:
            hat = _shaped(rng.standard_normal(hat_n), _band(6000.0, 7800.0))
            _place(out, _at_peak(hat * _envelope(hat_n, 2, hat_n / 6), -16.0), at)
    return out


def drums(rng: Rng, seconds: float) -> np.ndarray:
    return _at_rms(_drum_pattern(rng, seconds), -22.0)


def music_mix(rng: Rng, seconds: float) -> np.ndarray:
    """Melody, chords and drums together: background music in a room."""
    mix = (melody_square(rng, seconds) + chords(rng, seconds) + drums(rng, seconds))
    return _at_rms(mix, -18.0)


def sweep(rng: Rng, seconds: float) -> np.ndarray:
    """A logarithmic sine sweep 50 Hz -> 7.5 kHz (a test signal, or a siren-like slide)."""
    t = _t(seconds)
    f0, f1 = 50.0, 7500.0
    k = np.log(f1 / f0)
    phase = 2 * np.pi * f0 * seconds / k * (np.exp(t / seconds * k) - 1)
    return np.sin(phase) * _db(-12.0)


_DTMF = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209),
         "5": (770, 1336), "6": (770, 1477), "7": (852, 1209), "8": (852, 1336),
         "9": (852, 1477), "*": (941, 1209), "0": (941, 1336), "#": (941, 1477)}


def dtmf(rng: Rng, seconds: float) -> np.ndarray:
    """Phone numbers dialled on a keypad: 100 ms tones, 80 ms gaps, a pause between numbers."""
    out = np.zeros(_n(seconds))
    t = 0.2
    keys = list(_DTMF)
    while t < seconds - 2.5:
        for _ in range(10):
            lo, hi = _DTMF[keys[int(rng.integers(0, len(keys)))]]
            tt = _t(0.1)
            _place(out, 0.25 * (np.sin(2 * np.pi * lo * tt) + np.sin(2 * np.pi * hi * tt)),
                   _n(t))
            t += 0.18
        t += rng.uniform(0.8, 1.5)
    return out


def beep_1khz(rng: Rng, seconds: float) -> np.ndarray:
    """A 1 kHz beep, 1 s on / 1 s off (-12 dBFS peak, 5 ms ramps)."""
    t = _t(seconds)
    gate = ((t % 2.0) < 1.0).astype(np.float64)
    ramp = _n(0.005)
    gate = np.convolve(gate, np.ones(ramp) / ramp, mode="same")
    return np.sin(2 * np.pi * 1000.0 * t) * gate * _db(-12.0)


def _syllabic_talker(rng: Rng, seconds: float) -> np.ndarray:
    """Speech-shaped noise gated at a syllable rate: the rhythm and spectrum of a voice, with
    no pitch, formants or words (nothing a recognizer could read as language)."""
    n = _n(seconds)
    # Long-term speech spectrum: flat-ish 100-500 Hz, then falling ~6 dB/octave to 4 kHz.
    noise = _shaped(rng.standard_normal(n),
                    lambda f: _band(100.0, 4000.0)(f) / np.maximum(f / 500.0, 1.0))
    env = np.zeros(n)
    t = rng.uniform(0.0, 0.5)
    while t < seconds:  # "phrases" of 3-12 syllables at ~4-6 per second, then a pause
        for _ in range(int(rng.integers(3, 13))):
            dur = rng.uniform(0.12, 0.28)
            m = _n(dur)
            _place(env, np.sin(np.pi * np.arange(m) / m) * rng.uniform(0.4, 1.0), _n(t))
            t += dur + rng.uniform(0.0, 0.06)
        t += rng.uniform(0.2, 0.9)
    return noise * env


def babble_one(rng: Rng, seconds: float) -> np.ndarray:
    """One 'talker' of syllabic noise, at a speaking level."""
    return _at_rms(_syllabic_talker(rng, seconds), -24.0)


def babble_crowd(rng: Rng, seconds: float) -> np.ndarray:
    """Crowd murmur: eight independent syllabic-noise talkers mixed."""
    return _at_rms(np.sum([_syllabic_talker(rng, seconds) for _ in range(8)], axis=0), -24.0)


# -- the programme -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Sound:
    """One kind of non-speech and how long of it to generate."""

    name: str
    seconds: float
    make: Callable[[Rng, float], np.ndarray]


PROGRAMME: dict[str, tuple[Sound, ...]] = {
    # file ("speaker") -> its sounds, in order
    "quiet": (Sound("digital_silence", 30, digital_silence), Sound("hiss", 30, hiss)),
    "noise": (Sound("white_noise", 30, white_noise), Sound("pink_noise", 30, pink_noise),
              Sound("brown_noise", 30, brown_noise)),
    "hum": (Sound("mains_hum_50hz", 20, mains_hum_50hz),
            Sound("mains_hum_60hz", 20, mains_hum_60hz)),
    "desk": (Sound("clicks", 30, clicks), Sound("keyboard", 30, keyboard),
             Sound("breathing", 30, breathing), Sound("coughs_claps", 30, coughs_claps)),
    "music": (Sound("melody_sine", 30, melody_sine), Sound("melody_square", 30, melody_square),
              Sound("chords", 40, chords), Sound("drums", 30, drums),
              Sound("music_mix", 40, music_mix)),
    "tones": (Sound("sweep", 20, sweep), Sound("dtmf", 20, dtmf),
              Sound("beep_1khz", 20, beep_1khz)),
    "babble": (Sound("babble_one", 30, babble_one), Sound("babble_crowd", 30, babble_crowd)),
}
"""About ten minutes in all (sum of ``seconds``: 600), plus the gaps between sounds."""


@dataclass(frozen=True, slots=True)
class Span:
    """Where one sound lies in its speaker's file, in seconds from the file's start."""

    sound: str
    start_s: float
    end_s: float


def render(sounds: tuple[Sound, ...], seed: int) -> tuple[np.ndarray, tuple[Span, ...]]:
    """One speaker's file: the sounds in order, each followed by :data:`GAP_S` of silence.

    Each sound draws from its own generator, seeded by ``seed`` and the sound's name, so a
    change to one sound never changes the samples of another.
    """
    parts: list[np.ndarray] = []
    spans: list[Span] = []
    pos = 0
    for sound in sounds:
        rng = np.random.default_rng([seed, *sound.name.encode()])
        audio = np.clip(sound.make(rng, sound.seconds), -1.0, 1.0)
        spans.append(Span(sound.name, pos / SAMPLE_RATE, (pos + len(audio)) / SAMPLE_RATE))
        parts += [audio, np.zeros(_n(GAP_S))]
        pos += len(audio) + _n(GAP_S)
    return np.concatenate(parts), tuple(spans)


def to_pcm16(audio: np.ndarray) -> bytes:
    """Float samples in [-1, 1] -> 16-bit little-endian PCM."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
