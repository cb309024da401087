"""Chinese sound-alike matching: text and terms as pinyin syllables (``pypinyin``).

A recognizer that mishears, or a speaker who dodges a filter, swaps a character for another
with the same sound: ``赌博`` (du bo) written ``堵博``, ``卖大麻`` as ``卖大马``, or typed in
Latin letters as ``du bo`` / ``dubo``. Matching the *syllables* instead of the characters
catches all of them.

:func:`pinyin_text` turns normalized text into one space-separated unit per Han character (its
syllable) and per other token (kept as written, so Latin-typed pinyin lines up with syllables),
remembering each unit's span in the normalized text. :func:`term_readings` gives a term's
syllable sequences. Two modes:

* ``toneless`` (default): ``du bo``. Catches the most; also conflates words that differ only
  in tone (``冰毒`` bīng dú, ice/meth vs ``病毒`` bìng dú, virus), which is why the default pack
  lists phrases (``卖冰毒``), not bare words.
* ``tones``: ``du3 bo2`` (TONE3, neutral tone 5): only true homophones match.

Each Han character is read with its most common reading (per-character cache, so the hot path
is a dict lookup); a term also registers its in-context phrase reading when that differs (a
polyphonic character such as ``行`` reads xing or hang).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pypinyin import Style, lazy_pinyin

from policy.normalize import UNSPACED_CHARS, is_unspaced

__all__ = ["PinyinMode", "PinyinText", "is_han", "pinyin_text", "pinyin_units", "syllable",
           "term_readings", "untoned"]

PinyinMode = Literal["off", "toneless", "tones"]
"""``off``: no sound-alike matching; ``toneless``: syllables without tones; ``tones``: with."""

_CACHE: dict[tuple[str, bool], str] = {}
_UNIT = re.compile(rf"[{UNSPACED_CHARS}]|[^ {UNSPACED_CHARS}]+")
"""A pinyin unit in normalized text: one character of an unspaced script, or a run of others."""
_ALL_UNSPACED = re.compile(f"[{UNSPACED_CHARS}]+")


def is_han(ch: str) -> bool:
    """True for a Han (Chinese) character: the ones that have pinyin."""
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def _style(tones: bool) -> Style:
    return Style.TONE3 if tones else Style.NORMAL


def syllable(ch: str, tones: bool = False) -> str:
    """The most common reading of the Han character ``ch`` (``du`` / ``du3``)."""
    key = (ch, tones)
    s = _CACHE.get(key)
    if s is None:
        s = lazy_pinyin(ch, style=_style(tones), neutral_tone_with_five=True)[0]
        _CACHE[key] = s
    return s


def term_readings(term: str, tones: bool = False) -> set[tuple[str, ...]]:
    """Syllable sequences of a normalized term made only of Han characters (at least two:
    one syllable alone is too ambiguous); empty for any other term."""
    if len(term) < 2 or not all(is_han(c) for c in term):
        return set()
    per_char = tuple(syllable(c, tones) for c in term)
    phrase = tuple(lazy_pinyin(term, style=_style(tones), neutral_tone_with_five=True))
    return {per_char, phrase} if len(phrase) == len(term) else {per_char}


@dataclass(frozen=True, slots=True)
class PinyinText:
    """Normalized text as pinyin units.

    Attributes:
        text: the units joined by single spaces.
        spans: ``spans[u]`` is the ``[start, end)`` of unit ``u`` in the normalized text;
            ``None`` when unit ``u`` is character ``u`` (text all Chinese: the common case).
    """

    text: str
    spans: list[tuple[int, int]] | None

    def normalized_span(self, start: int, end: int) -> tuple[int, int]:
        """The normalized-text span covered by the units in ``text[start:end]`` (a space
        belongs to the unit before it)."""
        # unit index = spaces before the position (counted in C, only for a match's ends)
        first = self.text.count(" ", 0, start)
        last = self.text.count(" ", 0, end - 1)
        if self.spans is None:
            return first, last + 1
        return self.spans[first][0], self.spans[last][1]


class _UnitTable(dict[int, str]):
    """``str.translate`` table that puts each Han character's syllable (each kana as itself)
    between spaces and keeps every other character; filled on first sight."""

    def __init__(self, tones: bool) -> None:
        super().__init__()
        self._tones = tones

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        if is_unspaced(ch):
            unit = f" {syllable(ch, self._tones) if is_han(ch) else ch} "
        else:
            unit = ch
        self[code] = unit
        return unit


_UNIT_TABLES = {False: _UnitTable(False), True: _UnitTable(True)}


class _SyllableTable(dict[int, str]):
    """``str.translate`` table for text of unspaced characters only: each becomes its unit
    and one space."""

    def __init__(self, tones: bool) -> None:
        super().__init__()
        self._units = _UNIT_TABLES[tones]

    def __missing__(self, code: int) -> str:
        unit = self._units[code].strip(" ") + " "
        self[code] = unit
        return unit


_SYLLABLE_TABLES = {False: _SyllableTable(False), True: _SyllableTable(True)}


def pinyin_units(normalized: str, tones: bool = False) -> str:
    """``pinyin_text(normalized, tones).text`` without the spans: one ``translate`` and a
    split, for the common case where the sound-alike automaton finds nothing."""
    if _ALL_UNSPACED.fullmatch(normalized):  # all Chinese: every unit is one syllable
        return normalized.translate(_SYLLABLE_TABLES[tones])[:-1]
    return " ".join(normalized.translate(_UNIT_TABLES[tones]).split())


def untoned(normalized: str, toned: str) -> str:
    """``pinyin_units(normalized, False)`` given ``toned = pinyin_units(normalized, True)``.

    All-Chinese text: the tone digits dropped (each of the 20,991 CJK characters' toneless
    syllable is its toned one without the digit) instead of a second lookup per character,
    on UTF-8 bytes (a multi-byte character never contains the bytes of ``1``-``5``, and
    ``bytes.translate`` deletes ten times faster than ``str.translate``). Other text, whose
    typed tokens may hold digits, is read again."""
    if _ALL_UNSPACED.fullmatch(normalized):
        return toned.encode("utf-8").translate(None, b"12345").decode("utf-8")
    return pinyin_units(normalized, False)


def pinyin_text(normalized: str, tones: bool = False, units: str | None = None) -> PinyinText:
    """``normalized`` (from :func:`policy.normalize.normalize`) as pinyin units: each Han
    character (or kana) one unit, each other token one unit. ``units``: the text of
    ``pinyin_units(normalized, tones)`` when the caller already has it."""
    text = pinyin_units(normalized, tones) if units is None else units
    spans = (None if _ALL_UNSPACED.fullmatch(normalized)
             else [m.span() for m in _UNIT.finditer(normalized)])
    return PinyinText(text, spans)
