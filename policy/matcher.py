"""Phrase matchers: find every rule term in normalized text.

The engine only needs :class:`Matcher`: "give me every (start, end, key) where one of my phrases
occurs on word boundaries". :class:`PhraseMatcher` does that with a dict keyed by each phrase's
first word, which is exact (overlapping and nested phrases are all reported) and fast for packs of
hundreds to a few thousand terms. A pack of tens of thousands of terms, or sub-word matching,
would swap in an Aho-Corasick automaton behind the same interface.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol

__all__ = ["Match", "Matcher", "PhraseMatcher"]


class Match(NamedTuple):
    """A phrase occurrence: ``[start, end)`` offsets in the normalized text, and the key the
    phrase was registered with (the rule's index in the pack)."""

    start: int
    end: int
    key: int


class Matcher(Protocol):
    def find_all(self, text: str) -> list[Match]:
        """Every occurrence of every phrase in ``text`` (normalized: word tokens separated by
        single spaces), overlapping ones included, ordered by (start, end, key)."""
        ...


class PhraseMatcher:
    """Word-level phrase matcher over normalized text.

    Args:
        phrases: ``(normalized phrase, key)`` pairs; a phrase is one or more words separated by
            single spaces (what :func:`policy.normalize.normalize_term` returns).
    """

    __slots__ = ("_by_first", "_max_words")

    def __init__(self, phrases: Iterable[tuple[str, int]]) -> None:
        by_first: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        max_words = 0
        for phrase, key in phrases:
            words = tuple(phrase.split(" "))
            if not phrase or "" in words:
                raise ValueError(f"phrase {phrase!r} is not normalized")
            by_first.setdefault(words[0], []).append((words[1:], key))
            max_words = max(max_words, len(words))
        self._by_first = {w: tuple(c) for w, c in by_first.items()}
        self._max_words = max_words

    def find_all(self, text: str) -> list[Match]:
        if not text:
            return []
        words = text.split(" ")
        by_first = self._by_first
        out: list[Match] = []
        pos = 0
        n = len(words)
        for i, word in enumerate(words):
            cands = by_first.get(word)
            if cands is not None:
                for rest, key in cands:
                    k = len(rest)
                    if k == 0:
                        out.append(Match(pos, pos + len(word), key))
                    elif i + k < n and tuple(words[i + 1 : i + 1 + k]) == rest:
                        end = pos + len(word) + sum(len(w) for w in rest) + k
                        out.append(Match(pos, end, key))
            pos += len(word) + 1
        out.sort()
        return out
