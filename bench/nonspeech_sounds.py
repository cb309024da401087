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

from bench.nonspeech_dsp import (
    SAMPLE_RATE,
    Rng,
    at_peak,
    at_rms,
    band,
    colored,
    db,
    envelope,
    n_samples,
    place,
    shaped,
    times,
)

GAP_S = 1.0
"""Digital silence between two sounds in a file: longer than the VAD's 0.45 s hangover, so a
segment never spans two sounds (attribution of a segment to a sound stays exact)."""


# -- the sounds: each (rng, seconds) -> float samples in [-1, 1] ---------------------------------

def digital_silence(rng: Rng, seconds: float) -> np.ndarray:
    return np.zeros(n_samples(seconds))


def hiss(rng: Rng, seconds: float) -> np.ndarray:
    """A quiet microphone's self-noise: white, -70 dBFS RMS (about 10 LSB)."""
    return at_rms(rng.standard_normal(n_samples(seconds)), -70.0)


def _levels(rng: Rng, seconds: float, exponent: float) -> np.ndarray:
    # Three levels, quiet to loud: a fan across the room, an air conditioner, a loud hiss.
    third = seconds / 3
    return np.concatenate([at_rms(colored(rng, third, exponent), level)
                           for level in (-50.0, -35.0, -20.0)])


def white_noise(rng: Rng, seconds: float) -> np.ndarray:
    return _levels(rng, seconds, 0.0)


def pink_noise(rng: Rng, seconds: float) -> np.ndarray:
    return _levels(rng, seconds, 1.0)


def brown_noise(rng: Rng, seconds: float) -> np.ndarray:
    return _levels(rng, seconds, 2.0)


def _hum(rng: Rng, seconds: float, mains_hz: float) -> np.ndarray:
    t = times(seconds)
    # A ground loop: the fundamental plus odd-heavy harmonics, and a little hiss under it.
    amps = {1: 1.0, 2: 0.3, 3: 0.5, 4: 0.1, 5: 0.25, 7: 0.12, 9: 0.06}
    x = sum(a * np.sin(2 * np.pi * k * mains_hz * t + rng.uniform(0, 2 * np.pi))
            for k, a in amps.items())
    return at_rms(np.asarray(x), -25.0) + at_rms(rng.standard_normal(len(t)), -60.0)


def mains_hum_50hz(rng: Rng, seconds: float) -> np.ndarray:
    return _hum(rng, seconds, 50.0)


def mains_hum_60hz(rng: Rng, seconds: float) -> np.ndarray:
    return _hum(rng, seconds, 60.0)


def clicks(rng: Rng, seconds: float) -> np.ndarray:
    """Mouse clicks and pops: 2-8 ms broadband bursts at random times, about 3 per second."""
    out = np.zeros(n_samples(seconds))
    for at in np.sort(rng.integers(0, len(out), size=int(3 * seconds))):
        n = int(rng.integers(32, 128))
        burst = rng.standard_normal(n) * envelope(n, 2, n / 5)
        place(out, at_peak(burst, rng.uniform(-20.0, -6.0)), int(at))
    return out


def keyboard(rng: Rng, seconds: float) -> np.ndarray:
    """Typing: key strikes in bursts (words) with pauses, each a click on a damped resonance."""
    out = np.zeros(n_samples(seconds))
    t = 0.2
    while t < seconds - 0.3:
        for _ in range(int(rng.integers(3, 9))):  # one typed word
            n = n_samples(0.04)
            f0 = rng.uniform(1500.0, 4000.0)
            body = np.sin(2 * np.pi * f0 * np.arange(n) / SAMPLE_RATE)
            strike = (0.6 * rng.standard_normal(n) + body) * envelope(n, 8, n / 8)
            place(out, at_peak(strike, rng.uniform(-22.0, -10.0)), n_samples(t))
            t += rng.uniform(0.08, 0.22)
        t += rng.uniform(0.3, 1.2)
    return out + at_rms(rng.standard_normal(len(out)), -65.0)


def breathing(rng: Rng, seconds: float) -> np.ndarray:
    """Breaths close to a microphone: band-passed noise swelling and fading, inhale/exhale."""
    out = np.zeros(n_samples(seconds))
    t = 0.3
    inhale = True
    while t < seconds - 1.5:
        dur = rng.uniform(0.8, 1.6)
        n = n_samples(dur)
        lo, hi = (500.0, 3500.0) if inhale else (200.0, 2000.0)
        noise = shaped(rng.standard_normal(n), band(lo, hi))
        env = np.sin(np.pi * np.arange(n) / n) ** 2
        place(out, at_rms(noise * env, rng.uniform(-40.0, -28.0)), n_samples(t))
        t += dur + rng.uniform(0.2, 1.0)
        inhale = not inhale
    return out


def coughs_claps(rng: Rng, seconds: float) -> np.ndarray:
    """Coughs (a sharp noise burst with a low chest resonance), single claps and applause."""
    out = np.zeros(n_samples(seconds))
    half = seconds / 2
    t = 0.3
    while t < half - 0.6:  # coughs, sometimes in twos and threes
        for _ in range(int(rng.integers(1, 4))):
            n = n_samples(rng.uniform(0.15, 0.35))
            noise = shaped(rng.standard_normal(n), band(150.0, 3000.0))
            chest = np.sin(2 * np.pi * rng.uniform(90.0, 160.0) * np.arange(n) / SAMPLE_RATE)
            burst = (noise + 0.4 * chest) * envelope(n, n_samples(0.01), n / 4)
            place(out, at_peak(burst, rng.uniform(-12.0, -4.0)), n_samples(t))
            t += n / SAMPLE_RATE + rng.uniform(0.1, 0.3)
        t += rng.uniform(1.0, 2.5)
    while t < seconds - 0.2:  # claps: single ones, then applause (dense, overlapping)
        dense = t > half + (seconds - half) / 2
        n = n_samples(0.03)
        clap = shaped(rng.standard_normal(n), band(800.0, 5000.0)) * envelope(n, 4, n / 6)
        place(out, at_peak(clap, rng.uniform(-14.0, -6.0)), n_samples(t))
        t += rng.uniform(0.02, 0.08) if dense else rng.uniform(0.3, 1.5)
    return out


# -- music ---------------------------------------------------------------------------------------

_A4 = 440.0
_SCALE = (0, 2, 4, 5, 7, 9, 11, 12)  # major scale, semitones above the tonic


def _note_hz(semitones_from_a4: float) -> float:
    return _A4 * 2.0 ** (semitones_from_a4 / 12.0)


def _adsr(n: int, a: float = 0.01, d: float = 0.08, s: float = 0.6, r: float = 0.1) -> np.ndarray:
    na, nd, nr = n_samples(a), n_samples(d), n_samples(r)
    ns = max(0, n - na - nd - nr)
    env = np.concatenate([np.linspace(0, 1, na, endpoint=False),
                          np.linspace(1, s, nd, endpoint=False),
                          np.full(ns, s), np.linspace(s, 0, nr)])
    return env[:n] if len(env) >= n else np.pad(env, (0, n - len(env)))


def _melody(rng: Rng, seconds: float, wave: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    out = np.zeros(n_samples(seconds))
    t, tonic = 0.0, float(rng.integers(-12, 3))
    while t < seconds - 0.5:
        dur = float(rng.choice([0.125, 0.25, 0.25, 0.5, 0.75]))
        f = _note_hz(tonic + _SCALE[int(rng.integers(0, len(_SCALE)))])
        n = n_samples(dur)
        phase = 2 * np.pi * f * np.arange(n) / SAMPLE_RATE
        place(out, wave(phase) * _adsr(n), n_samples(t))
        t += dur
    return at_rms(out, -20.0)


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
    out = np.zeros(n_samples(seconds))
    roots = (0, 7, 9, 5)
    t, i = 0.0, 0
    while t < seconds - 0.5:
        dur = float(rng.choice([1.5, 2.0, 2.5]))
        n = n_samples(dur)
        root = roots[i % 4] - 9
        third = 3 if roots[i % 4] == 9 else 4
        chord = sum(_tone(_note_hz(root + iv), n) for iv in (0, third, 7, 12))
        place(out, np.asarray(chord) * _adsr(n, a=0.03, d=0.3, s=0.5, r=0.4), n_samples(t))
        t, i = t + dur, i + 1
    return at_rms(out, -20.0)


def _drum_pattern(rng: Rng, seconds: float, bpm: float = 100.0) -> np.ndarray:
    out = np.zeros(n_samples(seconds))
    step = 60.0 / bpm / 4  # sixteenth notes
    kick_n, snare_n, hat_n = n_samples(0.25), n_samples(0.18), n_samples(0.05)
    k = np.arange(kick_n) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * (50 * k + 60 * (1 - np.exp(-k * 30)) / 30)) * envelope(
        kick_n, 8, kick_n / 4)
    for i in range(int(seconds / step)):
        at, pos = n_samples(i * step), i % 16
        if pos in (0, 8) or (pos == 10 and rng.random() < 0.5):
            place(out, kick * 0.9, at)
        if pos in (4, 12):
            snare = (shaped(rng.standard_normal(snare_n), band(1000.0, 6000.0))
                     + 0.5 * np.sin(2 * np.pi * 190 * np.arange(snare_n) / SAMPLE_RATE))
            place(out, at_peak(snare * envelope(snare_n, 4, snare_n / 5), -6.0), at)
        if pos % 2 == 0:
            hat = shaped(rng.standard_normal(hat_n), band(6000.0, 7800.0))
            place(out, at_peak(hat * envelope(hat_n, 2, hat_n / 6), -16.0), at)
    return out


def drums(rng: Rng, seconds: float) -> np.ndarray:
    return at_rms(_drum_pattern(rng, seconds), -22.0)


def music_mix(rng: Rng, seconds: float) -> np.ndarray:
    """Melody, chords and drums together: background music in a room."""
    mix = (melody_square(rng, seconds) + chords(rng, seconds) + drums(rng, seconds))
    return at_rms(mix, -18.0)


def sweep(rng: Rng, seconds: float) -> np.ndarray:
    """A logarithmic sine sweep 50 Hz -> 7.5 kHz (a test signal, or a siren-like slide)."""
    t = times(seconds)
    f0, f1 = 50.0, 7500.0
    k = np.log(f1 / f0)
    phase = 2 * np.pi * f0 * seconds / k * (np.exp(t / seconds * k) - 1)
    return np.sin(phase) * db(-12.0)


_DTMF = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209),
         "5": (770, 1336), "6": (770, 1477), "7": (852, 1209), "8": (852, 1336),
         "9": (852, 1477), "*": (941, 1209), "0": (941, 1336), "#": (941, 1477)}


def dtmf(rng: Rng, seconds: float) -> np.ndarray:
    """Phone numbers dialled on a keypad: 100 ms tones, 80 ms gaps, a pause between numbers."""
    out = np.zeros(n_samples(seconds))
    t = 0.2
    keys = list(_DTMF)
    while t < seconds - 2.5:
        for _ in range(10):
            lo, hi = _DTMF[keys[int(rng.integers(0, len(keys)))]]
            tt = times(0.1)
            place(out, 0.25 * (np.sin(2 * np.pi * lo * tt) + np.sin(2 * np.pi * hi * tt)),
                   n_samples(t))
            t += 0.18
        t += rng.uniform(0.8, 1.5)
    return out


def beep_1khz(rng: Rng, seconds: float) -> np.ndarray:
    """A 1 kHz beep, 1 s on / 1 s off (-12 dBFS peak, 5 ms ramps)."""
    t = times(seconds)
    gate = ((t % 2.0) < 1.0).astype(np.float64)
    ramp = n_samples(0.005)
    gate = np.convolve(gate, np.ones(ramp) / ramp, mode="same")
    return np.sin(2 * np.pi * 1000.0 * t) * gate * db(-12.0)


def _syllabic_talker(rng: Rng, seconds: float) -> np.ndarray:
    """Speech-shaped noise gated at a syllable rate: the rhythm and spectrum of a voice, with
    no pitch, formants or words (nothing a recognizer could read as language)."""
    n = n_samples(seconds)
    # Long-term speech spectrum: flat-ish 100-500 Hz, then falling ~6 dB/octave to 4 kHz.
    noise = shaped(rng.standard_normal(n),
                    lambda f: band(100.0, 4000.0)(f) / np.maximum(f / 500.0, 1.0))
    env = np.zeros(n)
    t = rng.uniform(0.0, 0.5)
    while t < seconds:  # "phrases" of 3-12 syllables at ~4-6 per second, then a pause
        for _ in range(int(rng.integers(3, 13))):
            dur = rng.uniform(0.12, 0.28)
            m = n_samples(dur)
            place(env, np.sin(np.pi * np.arange(m) / m) * rng.uniform(0.4, 1.0), n_samples(t))
            t += dur + rng.uniform(0.0, 0.06)
        t += rng.uniform(0.2, 0.9)
    return noise * env


def babble_one(rng: Rng, seconds: float) -> np.ndarray:
    """One 'talker' of syllabic noise, at a speaking level."""
    return at_rms(_syllabic_talker(rng, seconds), -24.0)


def babble_crowd(rng: Rng, seconds: float) -> np.ndarray:
    """Crowd murmur: eight independent syllabic-noise talkers mixed."""
    return at_rms(np.sum([_syllabic_talker(rng, seconds) for _ in range(8)], axis=0), -24.0)


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
        parts += [audio, np.zeros(n_samples(GAP_S))]
        pos += len(audio) + n_samples(GAP_S)
    return np.concatenate(parts), tuple(spans)


def to_pcm16(audio: np.ndarray) -> bytes:
    """Float samples in [-1, 1] -> 16-bit little-endian PCM."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
