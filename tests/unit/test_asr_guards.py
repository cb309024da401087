"""Hallucination guards, on faster-whisper's own Segment/Word types (no model needed)."""

from __future__ import annotations

import pytest
from faster_whisper.transcribe import Segment
from faster_whisper.transcribe import Word as FwWord

from asr.frames import Word
from asr.guards import is_invented, judge, loops
from asr.params import DEFAULT_INVENTED_PHRASES, AsrParams

PARAMS = AsrParams()


def sub(
    text: str,
    *,
    start: float = 0.0,
    prob: float = 0.9,
    no_speech: float = 0.05,
    logprob: float = -0.3,
    ratio: float = 1.2,
) -> Segment:
    """A decoded sub-segment whose words are spread 0.3 s apart from ``start``."""
    words = [FwWord(start + 0.3 * i, start + 0.3 * i + 0.25, " " + w, prob)
             for i, w in enumerate(text.split())]
    return Segment(id=0, seek=0, start=start, end=start + 0.3 * len(words), text=" " + text,
                   tokens=[], avg_logprob=logprob, compression_ratio=ratio,
                   no_speech_prob=no_speech, words=words, temperature=0.0)


def test_clean_speech_is_confident_with_offset_words() -> None:
    j = judge([sub("he was not"), sub("an ill disposed man", start=1.0, prob=0.7)], PARAMS,
              offset_s=100.0, duration_s=3.0)

    assert j.text == "he was not an ill disposed man"
    assert j.confidence_class == "confident"
    assert j.guard_reasons == ()
    assert j.words[0] == Word("he", 100.0, 100.25, 0.9)
    assert j.words[3].start_offset_s == pytest.approx(101.0)
    assert j.confidence == pytest.approx((3 * 0.9 + 4 * 0.7) / 7)


def test_word_times_are_clamped_into_the_segment() -> None:
    j = judge([sub("late words here", start=1.8)], PARAMS, offset_s=10.0, duration_s=2.0)

    assert all(10.0 <= w.start_offset_s <= w.end_offset_s <= 12.0 for w in j.words)


def test_whisper_no_speech_rule_needs_both_signals() -> None:
    silent = sub("so", no_speech=0.9, logprob=-1.5)
    sure = sub("yes", no_speech=0.9, logprob=-0.2)  # high no-speech but a confident decode

    assert judge([silent], PARAMS, offset_s=0, duration_s=3).confidence_class == "rejected"
    kept = judge([sure], PARAMS, offset_s=0, duration_s=3)
    # Kept (Whisper's rule needs both signals), but never confident: it may not be speech.
    assert kept.text == "yes" and kept.confidence_class == "low"
    assert kept.guard_reasons == ("high_no_speech_prob",)


def test_fluent_text_on_probable_non_speech_is_never_confident() -> None:
    # A 1 kHz beep packed with the beeps before it, as tiny.en decoded it (bench.nonspeech).
    beep = sub("F***!", no_speech=0.70, logprob=-0.56, prob=0.92, ratio=0.38)
    # The highest no-speech probability real speech reached there ("five five", decoded alone).
    speech = sub("five five", no_speech=0.58, logprob=-0.56, prob=0.9)

    j = judge([beep], PARAMS, offset_s=0, duration_s=1.6)
    assert (j.text, j.confidence_class, j.guard_reasons) == ("F***!", "low",
                                                             ("high_no_speech_prob",))
    assert judge([speech], PARAMS, offset_s=0, duration_s=1.5).confidence_class == "confident"


def test_only_silence_is_rejected_with_its_evidence() -> None:
    j = judge([sub(".", no_speech=0.95, logprob=-1.1, prob=0.07)], PARAMS, offset_s=0,
              duration_s=3)

    assert (j.text, j.words, j.confidence) == ("", (), 0.0)
    assert j.confidence_class == "rejected"
    assert j.guard_reasons == ("no_speech",)
    assert j.no_speech_prob == 0.95 and j.avg_logprob == -1.1  # dropped sub-segments count


def test_trailing_invented_phrase_is_dropped_but_speech_kept() -> None:
    j = judge([sub("you are all banned from this room"), sub("Thanks for watching!", start=2)],
              PARAMS, offset_s=0, duration_s=4)

    assert j.text == "you are all banned from this room"
    assert j.confidence_class == "confident"
    assert j.guard_reasons == ("invented_phrase",)
    assert "watching" not in " ".join(w.text for w in j.words)
    assert j.dropped_text == "Thanks for watching!"


@pytest.mark.parametrize("texts", [
    ["Thank you for watching."],
    ["Please subscribe.", "Subtitles by the Amara.org community"],
    ["Thanks for", "watching!"],  # one phrase over two sub-segments
    ["you", "you", "You."],
    ["请不吝点赞、订阅、转发、打赏支持明镜与点点栏目"],
])
def test_nothing_but_invented_phrases_is_rejected(texts: list[str]) -> None:
    j = judge([sub(t, start=i) for i, t in enumerate(texts)], PARAMS, offset_s=0, duration_s=5)

    assert j.confidence_class == "rejected"
    assert j.text == "" and j.words == ()
    assert j.guard_reasons == ("invented_phrase",)


@pytest.mark.parametrize("text", ["thank you for coming", "watching you", "subscribe to this"])
def test_text_that_merely_contains_a_phrase_is_kept(text: str) -> None:
    assert not is_invented(text, DEFAULT_INVENTED_PHRASES)
    assert judge([sub(text)], PARAMS, offset_s=0, duration_s=2).text == text


def test_phrase_matching_ignores_case_punctuation_and_spacing() -> None:
    assert is_invented("THANKS, for watching!!", DEFAULT_INVENTED_PHRASES)
    assert is_invented("Subtitles by the Amara .org community.", DEFAULT_INVENTED_PHRASES)
    assert not is_invented("", DEFAULT_INVENTED_PHRASES)
    assert not is_invented("thanks for watching", ())


@pytest.mark.parametrize("subs", [[], [sub("...")], [sub(" - ")]])
def test_no_text_is_rejected(subs: list[Segment]) -> None:
    j = judge(subs, PARAMS, offset_s=0, duration_s=1)

    assert j.confidence_class == "rejected"
    assert j.guard_reasons == ("empty_text",)


def test_repetition_loop_is_low() -> None:
    j = judge([sub("go go go go go go go go go go go go", ratio=3.1)], PARAMS, offset_s=0,
              duration_s=4)

    assert j.confidence_class == "low"
    assert j.guard_reasons == ("repetition",)
    assert j.compression_ratio == 3.1


def test_short_loops_the_compression_ratio_misses_are_low() -> None:
    # What the multilingual base model wrote on synthesized chords (bench.nonspeech): ratio
    # 2.20, every other signal fine.
    j = judge([sub("P.S.A.P. P.S.A.P. P.S.A.P. P.S.A.P. P.S.A.P.", no_speech=0.5,
                   logprob=-0.43, prob=0.73, ratio=2.2)], PARAMS, offset_s=0, duration_s=3)

    assert (j.confidence_class, j.guard_reasons) == ("low", ("repetition",))


@pytest.mark.parametrize(("text", "looping"), [
    ("P.S.A.P. P.S.A.P. P.S.A.P. P.S.A.P.", True),
    ("I'm not sure if I can do it. I'm not sure if I can do it. I'm not sure if I can do it.",
     True),
    ("no, No, no, NO!", True),
    ("one two one two one two", True),
    ("no no no", False),  # a speaker's emphasis, not a decoding loop
    ("I'm sorry. I'm sorry.", False),
    ("I don't know, I don't know", False),
    ("he was not an ill disposed young man", False),
    ("", False),
])
def test_loops(text: str, looping: bool) -> None:
    assert loops(text) is looping


def test_poor_decode_and_unsure_words_are_low() -> None:
    assert judge([sub("maybe words", logprob=-1.2)], PARAMS, offset_s=0,
                 duration_s=1).guard_reasons == ("low_avg_logprob",)
    j = judge([sub("mumbled words", prob=0.3)], PARAMS, offset_s=0, duration_s=1)
    assert j.confidence_class == "low"
    assert j.guard_reasons == ("low_word_probability",)


def test_guards_off_keep_everything_whisper_said() -> None:
    raw = AsrParams(guards=False)
    j = judge([sub("so", no_speech=0.9, logprob=-1.5), sub("Thanks for watching!", start=1)],
              raw, offset_s=0, duration_s=3)

    assert j.text == "so Thanks for watching!"
    assert j.confidence_class == "confident"
    assert j.guard_reasons == ()


@pytest.mark.parametrize("bad", [
    {"beam_size": 0}, {"cpu_threads": -1}, {"temperatures": ()}, {"temperatures": (1.5,)},
    {"no_speech_threshold": 2.0}, {"low_confidence_below": -0.1},
])
def test_params_are_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        AsrParams(**bad)  # type: ignore[arg-type]
