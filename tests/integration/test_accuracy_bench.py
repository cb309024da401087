"""The accuracy benchmark end to end on the real model and real clips from ../shared/evaldata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.accuracy import DEFAULT_DATA, clip_segment, load_audio, render, run, run_config
from bench.accuracy_metrics import Clip, DecodeConfig, load_clips, summarize

pytestmark = pytest.mark.integration

TINY = DecodeConfig("tiny.en", "int8", "en", "en")


@pytest.fixture(scope="module")
def english_clips() -> list[Clip]:
    if not (DEFAULT_DATA / "en_speech").is_dir():
        pytest.skip(f"{DEFAULT_DATA} is not there (shared evaluation data beside the repo)")
    clips, _ = load_clips(DEFAULT_DATA, ["en"])
    wanted = {"jfk", "stereo_diarization_left", "stereo_diarization_right", "goforward"}
    return [c for c in clips if c.utt_id in wanted]


def test_stereo_file_is_split_per_speaker_and_resampled(english_clips: list[Clip]) -> None:
    by_id = {c.utt_id: c for c in english_clips}
    left, right = load_audio(by_id["stereo_diarization_left"]), \
        load_audio(by_id["stereo_diarization_right"])
    assert left.dtype == np.float32 and len(left) == len(right) == 5 * 16_000
    assert not np.allclose(left, right)
    jfk = load_audio(by_id["jfk"])  # 44.1 kHz stereo 24-bit FLAC -> 16 kHz mono
    assert abs(len(jfk) / 16_000 - 11.0) < 0.05


async def test_tiny_en_recognises_the_clips_through_the_recognizer(
        english_clips: list[Clip]) -> None:
    results = await run([TINY], english_clips)
    summary = summarize(TINY, results[TINY])
    assert summary.clips == 4
    assert summary.error_rate <= 0.05  # upstream tests assert these texts for Whisper tiny
    assert summary.language_correct == 4
    assert summary.cpu_s > 0 and summary.audio_s > 20
    section = render(results, [], command="python -m bench.accuracy", machine="m", commit="c",
                     started="now", elapsed_s=1.0, load=(0.0, 0.0), data_dir=DEFAULT_DATA)
    assert section.startswith("## ASR accuracy")
    assert "| tiny.en | int8 | en | hint en | 4 |" in section


async def test_guards_rejecting_silence_are_counted_with_the_raw_text() -> None:
    clip = Clip("silence", "en", "synthetic", Path("/nonexistent/silence.wav"), None, "nothing",
                "human_ground_truth")
    segment = clip_segment(clip, np.zeros(3 * 16_000, dtype=np.float32))
    [result] = await run_config(TINY, [clip], {clip: segment})
    assert result.confidence_class == "rejected" and result.text == ""
    # The guards dropped something, so the clip was decoded again with them off.
    assert {"no_speech", "invented_phrase"} & set(result.guard_reasons)
    assert summarize(TINY, [result]).rejected == 1
