"""The non-speech generator behind ``bench.nonspeech``: deterministic, about ten minutes, in
range, and every VAD segment is attributed to the sound it came from."""

from __future__ import annotations

import numpy as np

from bench.nonspeech import sound_of
from bench.nonspeech_sounds import GAP_S, PROGRAMME, SAMPLE_RATE, render, to_pcm16
from tests.fakes_asr import make_segment


def test_programme_is_about_ten_minutes_of_distinct_sounds() -> None:
    names = [s.name for sounds in PROGRAMME.values() for s in sounds]
    assert len(names) == len(set(names)) >= 20
    assert sum(s.seconds for sounds in PROGRAMME.values() for s in sounds) == 600


def test_render_is_deterministic_and_each_sound_independent() -> None:
    sounds = PROGRAMME["tones"]
    a, spans = render(sounds, seed=7)
    b, _ = render(sounds, seed=7)
    assert to_pcm16(a) == to_pcm16(b)
    c, _ = render(sounds, seed=8)
    assert to_pcm16(a) != to_pcm16(c)
    # A sound's samples depend on the seed and its own name only, not on its neighbours.
    alone, _ = render(sounds[1:2], seed=7)
    start = round(spans[1].start_s * SAMPLE_RATE)
    np.testing.assert_array_equal(a[start:start + len(alone) - round(GAP_S * SAMPLE_RATE)],
                                  alone[:len(alone) - round(GAP_S * SAMPLE_RATE)])


def test_every_file_stays_in_range_and_silent_between_sounds() -> None:
    for sounds in PROGRAMME.values():
        audio, spans = render(sounds, seed=1)
        assert np.max(np.abs(audio)) <= 1.0
        assert [s.sound for s in spans] == [s.name for s in sounds]
        for span in spans:
            gap = audio[round(span.end_s * SAMPLE_RATE):round((span.end_s + GAP_S) * SAMPLE_RATE)]
            assert len(gap) and not gap.any()


def test_a_segment_belongs_to_the_sound_it_overlaps_most() -> None:
    _, spans = render(PROGRAMME["tones"], seed=1)
    second = spans[1]
    pcm = b"\x00\x00" * SAMPLE_RATE
    seg = make_segment(pcm, start_offset_s=second.start_s - 0.3)  # pre-roll reaches back
    assert sound_of(spans, seg) == second.sound
