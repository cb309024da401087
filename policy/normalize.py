"""Text normalization for matching, with a map back to the original text.

``normalize("You,  IDIOT!")`` gives ``NormalizedText("you idiot", index)``: word tokens, casefolded
and NFKC-folded (full-width letters become ASCII), joined by single spaces. Apostrophes inside a
word vanish (``don't`` -> ``dont``); every other run of punctuation, symbols or whitespace becomes
one space; zero-width characters and combining marks are dropped (``i\u200bdiot`` -> ``idiot``).

Because the normalized text is nothing but tokens and single spaces, a term matches on word
boundaries exactly when it starts and ends at a token edge: ``kill`` cannot match inside
``skill``. ``index[i]`` is the offset in the original text of normalized character ``i``, so a
match can be reported against what the recognizer actually produced.

The ASCII case (nearly every Whisper transcript) takes a fast path: one lowercase, one regex scan.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["NormalizedText", "normalize", "normalize_term"]

_APOSTROPHES = "'\u2019\u02bc\u2018"
"""ASCII apostrophe, right single quote (the typographic apostrophe), modifier letter
apostrophe, left single quote (a common typo for the apostrophe)."""

# A word: letters/digits (\w minus underscore), optionally joined by inner apostrophes.
_WORD = re.compile(rf"[^\W_]+(?:[{_APOSTROPHES}][^\W_]+)*")
_APOS = re.compile(f"[{_APOSTROPHES}]")


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """Normalized text plus, for each of its characters, the offset in the original.

    Attributes:
        text: space-separated word tokens, casefolded and NFKC-folded.
        index: ``index[i]`` is the offset in ``original`` of ``text[i]`` (for a space: the first
            separator character it replaced).
        original: the text that was normalized.
    """

    text: str
    index: list[int]
    original: str = ""

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map the normalized span ``[start, end)`` (non-empty) to ``[start, end)`` offsets in
        the original text. The end covers the whole original character (and any combining marks
        after it) that produced the last normalized character."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"bad span [{start}, {end}) for text of length {len(self.text)}")
        o_start = self.index[start]
        o_end = self.index[end - 1] + 1
        original = self.original
        while o_end < len(original) and _is_dropped(original[o_end]):
            o_end += 1
        return o_start, o_end


def _is_dropped(ch: str) -> bool:
    """Combining marks and format characters (zero-width space/joiners, soft hyphen) are not
    part of what a word says; they are dropped (and often used to dodge filters)."""
    return unicodedata.category(ch) in ("Mn", "Me", "Cf")


def _fold(text: str) -> tuple[str, list[int] | None]:
    """NFKC + casefold, dropping combining/format characters; returns the folded text and, when
    it is not a 1:1 mapping of ``text``, the original offset of each folded character."""
    if text.isascii():
        return text.lower(), None
    out: list[str] = []
    idx: list[int] = []
    n = len(text)
    i = 0
    while i < n:
        # A base character and the combining marks after it fold together (NFKC composes them).
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        chunk = text[i:j]
        folded = unicodedata.normalize("NFKC", chunk).casefold()
        if not folded.isascii():
            # casefold can decompose again (e.g. U+0130); re-compose, then drop what is left over.
            folded = "".join(c for c in unicodedata.normalize("NFKC", folded)
                             if not _is_dropped(c))
        out.append(folded)
        idx.extend([i] * len(folded))
        i = j
    return "".join(out), idx


def normalize(text: str) -> NormalizedText:
    """Normalize ``text`` for matching; see the module docstring."""
    folded, fidx = _fold(text)
    parts: list[str] = []
    index: list[int] = []
    prev_end = 0
    for m in _WORD.finditer(folded):
        s, e = m.span()
        word = m.group()
        if parts:
            parts.append(" ")
            index.append(prev_end)  # the space stands for the separator run that began here
        if "'" in word or not word.isascii():
            positions = [s + k for k, c in enumerate(word) if c not in _APOSTROPHES]
            word = _APOS.sub("", word)
        else:
            positions = list(range(s, e))
        parts.append(word)
        index.extend(positions)
        prev_end = e
    if fidx is not None:
        index = [fidx[i] for i in index]
    return NormalizedText("".join(parts), index, text)


def normalize_term(term: str) -> str:
    """The normalized form of a rule term (what the matcher looks for)."""
    return normalize(term).text
