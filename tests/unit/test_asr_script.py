"""Chinese transcripts in Simplified characters (OpenCC t2s), everything else untouched."""

from __future__ import annotations

import threading

import pytest

from asr import script
from asr.script import contains_han, to_simplified


@pytest.mark.parametrize(("traditional", "simplified"), [
    ("這個世界沒有正義", "这个世界没有正义"),
    # Whisper base's own Traditional output on a Paraformer demo clip (shared evaldata).
    ("正是因為存在絕對正義,所以我們接受現實的相對正義",
     "正是因为存在绝对正义,所以我们接受现实的相对正义"),
    ("我們在會議裡討論了發展與頭髮的問題", "我们在会议里讨论了发展与头发的问题"),
    # Phrase-level: 乾 is 干 in 乾燥 but stays in the name 乾隆.
    ("乾隆皇帝覺得很乾燥", "乾隆皇帝觉得很干燥"),
])
def test_traditional_becomes_simplified(traditional: str, simplified: str) -> None:
    assert to_simplified(traditional) == simplified


def test_english_in_mixed_text_is_unchanged() -> None:
    assert (to_simplified("Hello 世界, 這是 Zoom meeting 的錄音 at 10:30!")
            == "Hello 世界, 这是 Zoom meeting 的录音 at 10:30!")


@pytest.mark.parametrize("text", [
    "",
    "he must be home now for the light is on",
    "欢迎大家来体验达摩院推出的语音识别模型",  # already Simplified
    "he must be home now 他一定在家因为灯亮着",
    "Ünïcödé — 123 ¡ok!",
    "こんにちは",  # kana only: no Han, nothing to convert
])
def test_text_needing_no_conversion_comes_back_unchanged(text: str) -> None:
    assert to_simplified(text) == text


def test_regional_vocabulary_is_not_rewritten() -> None:
    # t2s changes the script only; tw2sp would turn 計程車 into 出租车, words nobody said.
    assert to_simplified("臺灣的計程車和軟體") == "台湾的计程车和软体"


def test_contains_han() -> None:
    assert contains_han("abc 中 def")
    assert contains_han("㐀")  # extension A
    assert not contains_han("abc, 123 — ok")
    assert not contains_han("ひらがな カタカナ")


def test_converter_is_built_once_and_shared_across_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(script, "_converter", None)
    results: list[str] = []
    converters: list[object] = []
    start = threading.Barrier(8)

    def convert() -> None:
        start.wait()
        results.append(to_simplified("這個世界沒有正義"))
        converters.append(script._converter)

    threads = [threading.Thread(target=convert) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)

    assert results == ["这个世界没有正义"] * 8
    assert len({id(c) for c in converters}) == 1
