"""Every way a pack's terms can be found in a transcript: exact, normalized, leet, fuzzy, pinyin.

``TermIndex(terms).find(text)`` returns each term occurrence as ``[start, end)`` offsets in the
*original* text with a :data:`~policy.frames.MatchKind`. Three automata
(:class:`~policy.matcher.AutomatonMatcher`), each run only when it can matter:

* main, always: over :func:`~policy.normalize.normalize_text` (case, width, punctuation,
  Traditional -> Simplified, leet and look-alikes, spelled-out letters). Besides each term it
  holds the term with ``l`` spelled ``i`` (leet ``1`` folds to ``i``, so ``ki11`` reads
  ``kiii``) and, for Chinese terms, their pinyin typed in Latin letters (``du bo``, ``dubo``).
* fuzzy, when the text has a letter three times in a row: terms and text with runs of a
  repeated letter squeezed to one (``fuuuck``, ``kiiiill`` -> ``fuck``, ``kil``).
* pinyin, when the text has Chinese characters: term and text syllables
  (:mod:`policy.pinyin`), toneless or with tones.

The common case (plain ASCII text, no match) is one lowercase, a few C-level scans and one
automaton call; offsets are computed (:func:`~policy.normalize.normalize`) only once something
matched. Other text is normalized once, offsets included (Chinese text nearly always goes on to
the pinyin pass, whose unit spans are built only when the sound automaton hits). Matches of all
passes are merged as plain tuples and sorted once. When the same term is found at the same
span in several ways, the most literal kind is kept. ``python -m bench.policy_matching``
measures this path (section "Policy matching" in ``bench/RESULTS.md``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from string import ascii_lowercase
from typing import NamedTuple, Protocol

from ahocorasick_rs import AhoCorasick

from asr.script import contains_han
from policy.frames import MATCH_KINDS, MatchKind
from policy.matcher import AutomatonMatcher
from policy.normalize import NormalizedText, normalize, normalize_text
from policy.pinyin import PinyinMode, pinyin_text, pinyin_units, term_readings

__all__ = ["KIND_RANK", "Found", "Term", "TermIndex", "squeeze"]

KIND_RANK: dict[str, int] = {kind: rank for rank, kind in enumerate(MATCH_KINDS)}
"""Lower is more literal (exact first)."""

_TRIPLES = AhoCorasick([c * 3 for c in ascii_lowercase])
"""A Latin letter three times in a row (what sends text to the fuzzy pass); an automaton
scans for it in about a third of the time of the regex ``([a-z])\\1\\1``."""
_LETTER_RUN = re.compile(r"([a-z])\1+")


class Term(Protocol):
    """What the index needs of a rule (``policy.rules.Rule`` is one)."""

    @property
    def term(self) -> str: ...
    @property
    def normalized(self) -> str: ...


class Found(NamedTuple):
    """A term occurrence: ``[start, end)`` in the original text, the term's key (its index in
    the sequence the index was built from) and how it was found."""

    start: int
    end: int
    key: int
    kind: MatchKind


def squeeze(text: str) -> str:
    """``text`` with every run of one repeated Latin letter squeezed to one letter."""
    return _LETTER_RUN.sub(r"\1", text)


def _squeeze_with_spans(text: str) -> tuple[str, list[int], list[int]]:
    """Squeezed text, and for each squeezed char the first and last+1 offset it stands for."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for m in re.finditer(r"([a-z])\1*|.", text, re.S):
        out.append(m.group()[0])
        starts.append(m.start())
        ends.append(m.end())
    return "".join(out), starts, ends


def _plain(s: str) -> str:
    return " ".join(s.casefold().split())


class TermIndex:
    """Finds terms in transcripts (see the module docstring).

    Args:
        terms: the terms, in key order (``pack.rules``).
        pinyin: Chinese sound-alike matching: ``toneless`` (default), ``tones`` (only true
            homophones) or ``off``.
        fuzzy: match repeated-letter variants (``fuuuck``); default on.
    """

    def __init__(self, terms: Sequence[Term], *, pinyin: PinyinMode = "toneless",
                 fuzzy: bool = True) -> None:
        if pinyin not in ("off", "toneless", "tones"):
            raise ValueError(f"pinyin must be off, toneless or tones, not {pinyin!r}")
        self._terms = tuple(terms)
        self._exact = [_plain(t.term) for t in self._terms]
        variants: list[tuple[int, MatchKind]] = []
        main: list[tuple[str, int]] = []
        fuzzy_phrases: list[tuple[str, int]] = []
        sound: list[tuple[str, int]] = []

        def add(into: list[tuple[str, int]], phrase: str, key: int, kind: MatchKind) -> None:
            into.append((phrase, len(variants)))
            variants.append((key, kind))

        for key, t in enumerate(self._terms):
            n = t.normalized
            add(main, n, key, "normalized")
            if "l" in n:
                add(main, n.replace("l", "i"), key, "leet")
            if fuzzy and re.search(r"[a-z]", n):
                add(fuzzy_phrases, squeeze(n), key, "fuzzy")
            if pinyin != "off":
                for reading in term_readings(n):
                    add(main, " ".join(reading), key, "pinyin")
                    add(main, "".join(reading), key, "pinyin")
                for reading in term_readings(n, tones=pinyin == "tones"):
                    add(sound, " ".join(reading), key, "pinyin")
        self._variants = variants
        self._main = AutomatonMatcher(main)
        self._fuzzy = AutomatonMatcher(fuzzy_phrases) if fuzzy_phrases else None
        self._sound = AutomatonMatcher(sound) if sound else None
        self._tones = pinyin == "tones"

    def find(self, text: str) -> list[Found]:
        """Every term occurrence in ``text``, ordered by (start, end, key)."""
        # ASCII: text only (offsets are built below only if something matched); otherwise
        # normalize once, offsets included -- Chinese text nearly always goes on to pinyin.
        plain = text.isascii()  # then no Chinese either: the pinyin pass is skipped
        norm = None if plain else normalize(text)
        ntext = normalize_text(text) if norm is None else norm.text
        if not ntext:
            return []
        main = self._main.find_unordered(ntext)
        fuzzy: list[tuple[int, int, int]] = []
        if self._fuzzy is not None and _TRIPLES.find_matches_as_indexes(ntext):
            squeezed, starts, ends = _squeeze_with_spans(ntext)
            fuzzy = [(starts[s], ends[e - 1], v) for s, e, v in
                     self._fuzzy.find_unordered(squeezed)]
        sound: list[tuple[int, int, int]] = []
        if self._sound is not None and not plain and contains_han(ntext):
            units = pinyin_units(ntext, self._tones)
            found = self._sound.find_unordered(units)
            if found:  # only now the unit spans, to map the matches back
                pt = pinyin_text(ntext, self._tones, units)
                sound = [(*pt.normalized_span(s, e), v) for s, e, v in found]
        if not main and not fuzzy and not sound:
            return []
        if norm is None:
            norm = normalize(text)
        variants = self._variants
        best: dict[tuple[int, int, int], MatchKind] = {}
        passes: tuple[tuple[list[tuple[int, int, int]], MatchKind | None], ...] = (
            (main, None), (fuzzy, "fuzzy"), (sound, None))
        for matches, found_as in passes:
            for start, end, variant in matches:
                key, kind = variants[variant]
                kind = found_as or self._kind(norm, start, end, key, kind)
                span = (start, end, key)
                old = best.get(span)
                if old is None or KIND_RANK[kind] < KIND_RANK[old]:
                    best[span] = kind
        out = [Found(*norm.original_span(s, e), key, kind) for (s, e, key), kind in best.items()]
        out.sort()
        return out

    def _kind(self, norm: NormalizedText, start: int, end: int, key: int,
              kind: MatchKind) -> MatchKind:
        """Refine a main-automaton kind: leet when folding was involved, exact when the
        original span is the term itself (up to case and spacing)."""
        if kind != "normalized":
            return kind
        if norm.folded and any(i in norm.folded for i in range(start, end)):
            return "leet"
        s, e = norm.original_span(start, end)
        return "exact" if _plain(norm.original[s:e]) == self._exact[key] else "normalized"
