"""The matching fast paths give exactly what the general paths give.

Each fast path (plain-ASCII normalization with offsets, the cached one-to-one fold table, pinyin
units by ``translate``) is checked against the general code on many generated texts, offsets
included, so a speed-up can never change what is matched or where.
"""

from __future__ import annotations

import random
import re

import pytest

from policy.normalize import (
    _HAN_WORD,
    _fold,
    _fold_each,
    _normalize_plain_ascii,
    _normalize_tokens,
    is_unspaced,
    normalize,
    normalize_text,
)
from policy.pinyin import is_han, pinyin_text, pinyin_units, syllable

_ASCII_PIECES = ["kill", "skill", "you", "idiot", "k1ll", "$hit", "@", "$", "100", "4th", "don't",
                 "'", "f", "u", "c", "k", "a", "b", "I", "plan", "...", ",", "!", " ", "  ",
                 "\t", "-", "_", "covid19", "3", "x_y", "it's", "90's", "$100", "a.b.c"]
_MIXED_PIECES = ["赌博", "去", "吧", "賭博", "，", "。", "ｋｉｌｌ", "ｆｕｃｋ", "i\u200bdiot",
                 "іdiot", "é", "e\u0301", "ß", "İ", "ﬁ", "du bo", "ひらがな", "カタカナ", "々",
                 "美幼",
                 "\u00ad", "Ωmega", "キ"]


def _texts(pieces: list[str], n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return ["".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12))) for _ in range(n)]


def test_plain_ascii_normalize_matches_general_path() -> None:
    taken = 0
    letters_only = [p for p in _ASCII_PIECES if not any(c in p for c in "0123456789@$'")]
    for text in (_texts(_ASCII_PIECES, 3000, 1) + _texts(letters_only, 2000, 4)
                 + ["", " ", "a b c d", "Hi!", "A-B-C", "x\ty\nz", "ab c d e"]):
        fast = _normalize_plain_ascii(text)
        if fast is not None:
            taken += 1
            assert fast == _normalize_tokens(text), text
        assert normalize_text(text) == normalize(text).text, text
    assert taken > 300  # the fast path is exercised


def test_chinese_only_normalize_matches_general_path() -> None:
    pieces = ["赌博", "去", "吧", "賭博", "，", "。", " ", "!", "々", "カタカナ", "・", "美幼", "ﾃﾞ",
              "\u3000", "_", "x"]
    for text in _texts(pieces, 3000, 5):
        assert normalize(text) == _normalize_tokens(text), text


def test_every_fast_path_matches_general_path() -> None:
    pieces = _MIXED_PIECES + _ASCII_PIECES + ["QQ", "ok", "app", "2024", "x"]
    code_switching = ["QQ", "qq", "wx", "du", "k1ll", "123", "4th", " ", "赌博", "供应", "号", "a",
                      "b", "c", "，", ".", "'s", "々", "カタ", "é"]
    for text in (_texts(pieces, 4000, 7) + _texts(["QQ", " ", "赌博", "a", "b", "c", "，"], 500, 8)
                 + _texts(code_switching, 4000, 9)
                 + ["QQ供应保健品数据", "加微信wx123号", "我们去du博吧", "k1ll你", "你k1ll"]):
        assert normalize(text) == _normalize_tokens(text), text


def test_han_word_characters_are_word_characters() -> None:
    han = "".join(map(chr, [*range(0x3400, 0x4DC0), *range(0x4E00, 0xA000)]))
    assert _HAN_WORD.fullmatch(han) and re.fullmatch(r"[^\W_]+", han)


def test_fold_table_matches_character_loop() -> None:
    for text in _texts(_MIXED_PIECES + _ASCII_PIECES, 3000, 2):
        folded, index = _fold(text)
        loop_folded, loop_index = _fold_each(text)
        assert folded == loop_folded, text
        assert (list(range(len(text))) if index is None else index) == loop_index, text


def test_fold_table_on_every_bmp_character() -> None:
    # Twice: the first call fills the table, the second reads it back.
    for _ in range(2):
        for code in range(0x20, 0x10000):
            ch = chr(code)
            if 0xD800 <= code <= 0xDFFF:
                continue
            folded, index = _fold(ch + "a")
            loop_folded, loop_index = _fold_each(ch + "a")
            assert folded == loop_folded, hex(code)
            assert (list(range(2)) if index is None else index) == loop_index, hex(code)


def _reference_pinyin(normalized: str, tones: bool) -> tuple[str, list[tuple[int, int]]]:
    """The unit split as first written: a character loop."""
    units: list[str] = []
    spans: list[tuple[int, int]] = []
    i, n = 0, len(normalized)
    while i < n:
        ch = normalized[i]
        if ch == " ":
            i += 1
        elif is_unspaced(ch):
            units.append(syllable(ch, tones) if is_han(ch) else ch)
            spans.append((i, i + 1))
            i += 1
        else:
            j = i + 1
            while j < n and normalized[j] != " " and not is_unspaced(normalized[j]):
                j += 1
            units.append(normalized[i:j])
            spans.append((i, j))
            i = j
    return " ".join(units), spans


@pytest.mark.parametrize("tones", [False, True])
def test_pinyin_units_match_reference(tones: bool) -> None:
    chinese = ["赌博", "去", "吧", "美幼", "没有", "々", "カタカナ"]
    for text in _texts(_MIXED_PIECES + _ASCII_PIECES, 500, 3) + _texts(chinese, 200, 6):
        normalized = normalize_text(text)
        ref_text, ref_spans = _reference_pinyin(normalized, tones)
        assert pinyin_units(normalized, tones) == ref_text
        pt = pinyin_text(normalized, tones)
        spans = (pt.spans if pt.spans is not None
                 else [(i, i + 1) for i in range(len(normalized))])
        assert pt.text == ref_text and spans == ref_spans
        # every span of the pinyin text maps to the units it touches (a space: the unit before)
        unit_at = [u for u, unit in enumerate(ref_text.split(" ")) for _ in range(len(unit) + 1)]
        for start in range(len(ref_text)):
            for end in range(start + 1, len(ref_text) + 1):
                assert pt.normalized_span(start, end) == (
                    ref_spans[unit_at[start]][0], ref_spans[unit_at[end - 1]][1])
