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
  (:mod:`policy.pinyin`), toneless or with tones; two-character terms always with tones (two
  toneless syllables match everyday words: 没有 would read as 美幼).

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
from policy.pinyin import PinyinMode, pinyin_text, pinyin_units, term_readings, untoned

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


def _no_latin(text: str) -> bool:
    """Whether every non-space character of ``text`` is Chinese (nothing typed in Latin)."""
    return not any(c.isascii() and c.isalnum() for c in text)


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
        sound: dict[bool, list[tuple[str, int]]] = {False: [], True: []}  # tones -> phrases
        typed_only: set[int] = set()

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
                # Two syllables without tones are too common a sound: a 10,000-term lexicon
                # read toneless flags 没有 (mei you) as 美幼 and 一起你 as 骑你 in half of
                # everyday Chinese. A two-character term sounds alike only with its tones
                # (读品 dú pǐn still reads as 毒品); longer terms follow ``pinyin``.
                # Typed syllables carry no tone (我们去du博吧), so a two-character term is also
                # read toneless, but such a match counts only where part of it was typed.
                tones = pinyin == "tones" or len(n) == 2
                for reading in term_readings(n, tones=tones):
                    add(sound[tones], " ".join(reading), key, "pinyin")
                if tones and pinyin == "toneless":
                    for reading in term_readings(n):
                        typed_only.add(len(variants))
                        add(sound[False], " ".join(reading), key, "pinyin")
        self._variants = variants
        self._main = AutomatonMatcher(main)
        self._fuzzy = AutomatonMatcher(fuzzy_phrases) if fuzzy_phrases else None
        self._sound: tuple[tuple[AutomatonMatcher, bool], ...] = tuple(
            (AutomatonMatcher(phrases), tones) for tones, phrases in sorted(
                sound.items(), reverse=True) if phrases)  # toned first: toneless derives from it
        """The sound-alike automata: (automaton, whether its syllables carry tones)."""
        self._typed_only = frozenset(typed_only)
        """Toneless variants of two-character terms: kept only when part was typed in Latin."""

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
        if self._sound and not plain and contains_han(ntext):
            toned = ""
            for automaton, tones in self._sound:
                units = (untoned(ntext, toned) if toned and not tones
                         else pinyin_units(ntext, tones))
                toned = units if tones else toned
                found = automaton.find_unordered(units)
                if found:  # only now the unit spans, to map the matches back
                    pt = pinyin_text(ntext, tones, units)
                    for s, e, v in found:
                        start, end = pt.normalized_span(s, e)
                        if v not in self._typed_only or not _no_latin(ntext[start:end]):
                            sound.append((start, end, v))
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
