"""Character folding for deliberate evasions: leetspeak digits/symbols and look-alike letters.

Both tables map one character to one character, so folding never moves an offset.

* :data:`LEET` (``0->o, 1->i, 3->e, 4->a, 5->s, 7->t, @->a, $->s``) is applied only inside a
  token that mixes letters with these characters (``k1ll``, ``$hit``, ``1d10t``); a token of
  digits alone (``24``, ``100``) is a number and stays one. Two kinds of mixed tokens are
  ordinary writing, not leet, and are left alone: a number with a short suffix (``4th``,
  ``1st``, ``5g``, ``100k``) and a token with a digit that has no letter shape (2, 6, 8, 9:
  ``covid19``, ``mp4s``, ``b2b``).
  ``1`` becomes ``i``; terms spelled with ``l`` also get an ``l -> i`` variant in the matcher
  (see :mod:`policy.term_index`), so ``ki11`` still reaches ``kill``.
* :data:`HOMOGLYPHS` maps Cyrillic and Greek letters that look like Latin ones (after casefold)
  to those Latin letters. It is applied to a token that already has a Latin letter (mixed
  script: ``іdiot`` with a Cyrillic ``і``), or whose letters are all look-alikes (a spoofed
  word written entirely in Cyrillic); ordinary Cyrillic or Greek words keep their letters.
"""

from __future__ import annotations

import re

__all__ = ["HOMOGLYPHS", "LEET", "fold_token"]

LEET: dict[str, str] = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                        "@": "a", "$": "s"}
"""Leetspeak character -> letter (applied only inside letter/leet mixed tokens)."""

HOMOGLYPHS: dict[str, str] = {
    # Cyrillic (lowercase: the text is casefolded before this runs)
    "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i",
    "ј": "j", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "ԛ": "q", "ѕ": "s", "т": "t",
    "у": "y", "х": "x", "ԝ": "w", "ү": "y",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "ω": "w",
}
"""Cyrillic/Greek look-alike (casefolded) -> Latin letter."""

_LEET_RE = re.compile(f"[{re.escape(''.join(LEET))}]")
_HOMOGLYPH_RE = re.compile(f"[{''.join(HOMOGLYPHS)}]")
_LATIN = re.compile("[a-z]")
_LEET_TRANS = str.maketrans(LEET)
_HOMO_TRANS = str.maketrans(HOMOGLYPHS)
# Mixed tokens that are ordinary writing, not leet: 4th, 1st, 5g, 100k.
_NUMBER_SUFFIX = re.compile(r"\d+[a-z]{1,2}\Z")
_NOT_LEET_DIGITS = frozenset("2689")


def fold_token(token: str) -> tuple[str, bool]:
    """``token`` (casefolded, no apostrophes) with leet and look-alike characters folded, and
    whether anything was folded. The result has the same length as ``token``."""
    folded = token
    # One C-level scan each: most tokens skip both folds.
    if _HOMOGLYPH_RE.search(token) is not None:
        has_latin = _LATIN.search(token) is not None
        letters = [c for c in token if c.isalpha()]
        if has_latin or all(c in HOMOGLYPHS for c in letters):
            folded = folded.translate(_HOMO_TRANS)
    if (_LEET_RE.search(folded) is not None and not folded.isdigit()
            and any(c.isalpha() for c in folded)
            and not _NUMBER_SUFFIX.match(folded)
            and _NOT_LEET_DIGITS.isdisjoint(folded)):
        folded = folded.translate(_LEET_TRANS)
    return folded, folded != token
