"""Cross-speaker packing: window filling, layout, and word attribution (no model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from asr.packing import build_pack, compression_ratio, split_words, take_pack
from ingest.frames import SAMPLE_RATE
from tests.fakes_asr import make_segment


@dataclass
class W:
    start: float
    end: float
    word: str
    probability: float = 0.9


@dataclass
class S:
    text: str
    words: list[W]
    no_speech_prob: float = 0.01
    avg_logprob: float = -0.2
    compression_ratio: float = 1.2


def seg(duration: float, speaker: str = "a", seq: int = 0):
    return make_segment(duration_s=duration, speaker_id=speaker, seq=seq,
                        start_offset_s=10.0 * seq)


@pytest.mark.parametrize(
    ("durations", "window", "expected"),
    [
        ([3.0, 3.0, 3.0], 28.0, 3),
        ([10.0, 10.0, 10.0], 28.0, 2),  # 10 + 0.6 + 10 = 20.6; + 10.6 > 28
        ([27.5, 1.0], 28.0, 1),
        ([40.0, 1.0], 28.0, 1),  # an over-long head still goes alone: nobody starves
        ([], 28.0, 0),
    ],
)
def test_take_pack_fills_in_arrival_order(durations, window, expected):
    pending = [seg(d, seq=i) for i, d in enumerate(durations)]
    assert take_pack(pending, window_s=window, gap_s=0.6) == expected


def test_build_pack_lays_segments_out_with_silence_between():
    segments = [seg(1.0, "a"), seg(2.0, "b", 1)]
    audio = [np.full(SAMPLE_RATE, 0.5, np.float32), np.full(2 * SAMPLE_RATE, -0.5, np.float32)]
    pack = build_pack(segments, audio, gap_s=0.5)
    assert [(p.start_s, p.end_s) for p in pack.placements] == [(0.0, 1.0), (1.5, 3.5)]
    assert len(pack.audio) == int(3.5 * SAMPLE_RATE)
    assert np.all(pack.audio[SAMPLE_RATE:int(1.5 * SAMPLE_RATE)] == 0.0)
    assert pack.speech_s == pytest.approx(3.0)
    with pytest.raises(ValueError, match="one audio array per segment"):
        build_pack(segments, audio[:1])


def test_split_words_attributes_each_word_to_its_segment_and_retimes_it():
    segments = [seg(2.0, "a"), seg(2.0, "b", 1)]
    pack = build_pack(segments, [np.zeros(2 * SAMPLE_RATE, np.float32)] * 2, gap_s=0.6)
    # Whisper put both utterances in one sub-segment; word times are window times.
    sub = S(" hello there general kenobi", [W(0.1, 0.5, " hello"), W(0.6, 1.8, " there"),
                                           W(2.7, 3.2, " general"), W(3.3, 4.5, " kenobi")])
    pieces, ambiguous = split_words([sub], pack.placements)
    assert [p.text for p in pieces[0]] == [" hello there"]
    assert [p.text for p in pieces[1]] == [" general kenobi"]
    assert pieces[1][0].words[0].start == pytest.approx(0.1)  # 2.7 - 2.6
    assert not ambiguous
    assert pieces[1][0].compression_ratio == pytest.approx(compression_ratio("general kenobi"))


def test_a_word_timed_into_the_silence_makes_its_neighbours_uncertain():
    segments = [seg(2.0, "a"), seg(2.0, "b", 1), seg(2.0, "c", 2)]
    pack = build_pack(segments, [np.zeros(2 * SAMPLE_RATE, np.float32)] * 3, gap_s=0.6)
    # Seen for real: an utterance's last word ("Please.") as a zero-length word in the gap.
    pieces, ambiguous = split_words([S(" x please", [W(1.0, 1.5, " x"),
                                                     W(2.35, 2.35, " please")])],
                                    pack.placements)
    assert pieces[0][0].text == " x" and pieces[1][0].text == " please"
    assert ambiguous == {0, 1}


def test_a_word_spanning_two_segments_marks_both_uncertain():
    segments = [seg(2.0, "a"), seg(2.0, "b", 1), seg(2.0, "c", 2)]
    pack = build_pack(segments, [np.zeros(2 * SAMPLE_RATE, np.float32)] * 3, gap_s=0.6)
    pieces, ambiguous = split_words([S(" long", [W(1.5, 3.0, " long")])], pack.placements)
    assert ambiguous == {0, 1}
    assert sum(len(p) for p in pieces) == 1


def test_quality_signals_are_inherited_from_the_subsegment():
    segments = [seg(1.0, "a"), seg(1.0, "b", 1)]
    pack = build_pack(segments, [np.zeros(SAMPLE_RATE, np.float32)] * 2, gap_s=0.6)
    bad = S(" a b", [W(0.2, 0.4, " a"), W(1.8, 2.0, " b")], no_speech_prob=0.9,
            avg_logprob=-1.5)
    pieces, _ = split_words([bad], pack.placements)
    assert all(p[0].no_speech_prob == 0.9 and p[0].avg_logprob == -1.5 for p in pieces)


def piece(text: str, seconds_per_word: float = 0.3):
    from asr.packing import Piece, PieceWord

    words = tuple(PieceWord(i * seconds_per_word, (i + 1) * seconds_per_word, " " + w, 0.9)
                  for i, w in enumerate(text.split()))
    return Piece(" " + text, 0.01, -0.2, 1.0, words)


@pytest.mark.parametrize(
    ("text", "duration", "language", "why"),
    [
        ("okay thanks everyone see you next week", 2.9, "en", None),
        ("okay thanks everyone see you next week okay thanks everyone see you next week", 2.0,
         "en", "too_many_words"),
        ("okay thanks everyone see you next week okay thanks everyone see you next week", 2.9,
         "en", "repeated_phrase"),
        ("see you next week see you next week", 3.0, "en", "repeated_phrase"),
        ("no no no", 2.0, "en", None),  # a short stammer is speech, not a duplicated phrase
        ("我 想 问 我 在 滨 海 新 区 有 房", 2.0, "zh", None),
        ("我 想 问 我 在 滨 海 新 区 有 房 我 想 问 我 在 滨 海 新 区 有 房", 2.0, "zh",
         "too_many_words"),
    ],
)
def test_implausible_shares_are_named(text, duration, language, why):
    from asr.packing import implausible

    assert implausible([piece(text)], duration, language) == why


@pytest.mark.parametrize(
    ("first_start", "duration", "why"),
    [(0.3, 2.4, None), (1.5, 3.6, "missing_head"), (0.3, 4.5, "missing_tail")],
)
def test_words_must_reach_both_ends_of_the_speech(first_start, duration, why):
    from asr.packing import Piece, PieceWord, implausible

    # Three words of 0.5 s from first_start: the last ends at first_start + 1.5.
    words = tuple(PieceWord(first_start + 0.5 * i, first_start + 0.5 * (i + 1), f" w{i}", 0.9)
                  for i in range(3))
    assert implausible([Piece(" w0 w1 w2", 0.01, -0.2, 1.0, words)], duration, "en") == why
