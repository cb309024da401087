"""policy.normalize: folding, token joining and the map back to the original text."""

from __future__ import annotations

import pytest

from policy.normalize import normalize, normalize_term


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("you idiot", "you idiot"),
        ("YOU IDIOT", "you idiot"),
        ("You,  IDIOT!", "you idiot"),
        ("you... idiot!", "you idiot"),
        ("ｙｏｕ ｉｄｉｏｔ", "you idiot"),  # full-width letters and space
        ("ＹＯＵ\u3000ＩＤＩＯＴ！", "you idiot"),
        ("  \t you\n\nidiot  ", "you idiot"),
        ("don't", "dont"),
        ("don\u2019t you're", "dont youre"),  # typographic apostrophe
        ("'quoted' words", "quoted words"),  # apostrophes at word edges are punctuation
        ("self-harm", "self harm"),
        ("snake_case", "snake case"),
        ("STRASSE straße", "strasse strasse"),  # casefold, not lower
        ("i\u200bdiot", "idiot"),  # zero-width space inside a word is dropped
        ("i\u0338d\u0338i\u0338o\u0338t\u0338", "idiot"),  # combining overlay marks dropped
        ("caf\u0065\u0301", "caf\u00e9"),  # decomposed accent composes (NFKC)
        ("\ufb01ne", "fine"),  # ligature expands
        ("100% sure", "100 sure"),
        ("", ""),
        ("?!...", ""),
    ],
)
def test_normalize_text(text: str, expected: str) -> None:
    assert normalize(text).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "You,  IDIOT!",
        "ｙｏｕ ｉｄｉｏｔ",
        "don't stop",
        "i\u0338d\u0338iot, \ufb01ne",
        "a\u200bb  c",
        "caf\u0065\u0301 ok",
        "İstanbul",
        "",
    ],
)
def test_index_has_one_original_offset_per_normalized_char(text: str) -> None:
    n = normalize(text)
    assert len(n.index) == len(n.text)
    assert all(0 <= i < max(len(text), 1) for i in n.index)
    assert n.index == sorted(n.index)
    for ch, i in zip(n.text, n.index, strict=True):
        if ch == " ":
            assert not text[i].isalnum()


@pytest.mark.parametrize(
    ("text", "normalized_span", "original"),
    [
        ("Well, YOU  IDIOT!", "you idiot", "YOU  IDIOT"),
        ("ｙｏｕ ｉｄｉｏｔ", "you idiot", "ｙｏｕ ｉｄｉｏｔ"),
        ("hey i\u0338d\u0338iot\u0338 there", "idiot", "i\u0338d\u0338iot\u0338"),
        ("you don't", "dont", "don't"),
        ("a \ufb01ne day", "fine", "\ufb01ne"),
    ],
)
def test_original_span_maps_back(text: str, normalized_span: str, original: str) -> None:
    n = normalize(text)
    start = n.text.index(normalized_span)
    s, e = n.original_span(start, start + len(normalized_span))
    assert text[s:e] == original


def test_original_span_rejects_bad_spans() -> None:
    n = normalize("you idiot")
    with pytest.raises(ValueError):
        n.original_span(3, 3)
    with pytest.raises(ValueError):
        n.original_span(0, 99)


def test_normalize_term_matches_normalize() -> None:
    assert normalize_term("  Shut UP, loser! ") == "shut up loser"
    assert normalize_term("I'll kill you") == "ill kill you"


@pytest.mark.parametrize(("text", "normalized"), [
    ("我有100块", "我有 100 块"),          # a number next to Chinese is a number, not leet
    ("加微信123号", "加微信 123 号"),
    ("k1ll你", "kill 你"),                 # Latin letters with digits still are
    ("QQ供应保健品", "qq 供应保健品"),       # split where the scripts meet
])
def test_code_switching_splits_scripts_and_folds_only_latin(text: str, normalized: str) -> None:
    assert normalize(text).text == normalized
