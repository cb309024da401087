"""Text normalization for matching, with a map back to the original text.

``normalize("You,  IDIOT!")`` gives ``NormalizedText("you idiot", index)``. The layers, in order
(each a small function below):

1. :func:`_fold` -- NFKC (full-width letters become ASCII, ligatures expand) and casefold;
   zero-width/format characters and combining marks are dropped (``i\u200bdiot`` -> ``idiot``).
2. :func:`_to_simplified` -- Traditional Chinese -> Simplified (OpenCC ``t2s``, via
   :func:`asr.script.to_simplified`). Applied only when the conversion keeps the length (true for
   almost all text: t2s is character for character); otherwise character by character, keeping
   a character whose conversion would change the length.
3. :func:`_tokens` -- word tokens: letters/digits, inner apostrophes dropped (``don't`` ->
   ``dont``), every other run of punctuation, symbols or whitespace is a separator. A token is
   first split where Chinese/Japanese characters meet anything else, so English words and
   numbers next to Chinese keep their boundaries (``我有100块`` -> ``我有 100 块``). Inside each
   piece outside Chinese/Japanese, :func:`policy.leet.fold_token` folds leetspeak and look-alike
   letters (``k1ll`` -> ``kill``, Cyrillic ``іdiot`` -> ``idiot``) when it mixes them with
   letters.
4. :func:`_join_spelled` -- three or more single-letter Latin tokens in a row are one spelled-out
   word (``f u c k``, ``f.u.c.k`` -> ``fuck``); one or two single letters (``a``, ``i``, ``plan
   b``) stay words.
5. Joining: tokens are separated by one space, except between two Chinese/Japanese tokens,
   which are joined (those scripts have no spaces, so ``赌 博`` and ``赌-博`` are ``赌博``).

Because the normalized text is nothing but tokens and single spaces, a Latin term matches on
word boundaries exactly when it starts and ends at a token edge (``kill`` cannot match inside
``skill``), while Chinese terms match as substrings. ``index[i]`` is the offset in the original
text of normalized character ``i``, so a match is reported against what the recognizer produced;
``folded`` holds the normalized positions that leet/look-alike folding changed (matches over
them are reported as ``leet``).

:func:`normalize_text` returns only the text and takes a fast path for plain ASCII (nearly every
English transcript): one lowercase, one regex scan; it always equals ``normalize(t).text``.
:func:`normalize` itself skips the token loop for the common shapes -- plain ASCII, one or more
Chinese runs, simple English/number tokens next to Chinese -- and folds characters through a
cached ``str.translate`` table; each shortcut gives exactly what the general path gives
(``tests/unit/test_policy_fast_paths.py`` checks them against it).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from itertools import pairwise

from asr.script import to_simplified
from policy.leet import fold_token

__all__ = ["UNSPACED_CHARS", "NormalizedText", "is_unspaced", "normalize", "normalize_term",
           "normalize_text"]

_APOSTROPHES = "'\u2019\u02bc\u2018"
"""ASCII apostrophe, right single quote (the typographic apostrophe), modifier letter
apostrophe, left single quote (a common typo for the apostrophe)."""

# A word: letters/digits (\w minus underscore), optionally joined by inner apostrophes.
_WORD = re.compile(rf"[^\W_]+(?:[{_APOSTROPHES}][^\W_]+)*")
# A token before leet folding: like a word, but @ and $ count as (leet) characters.
_TOKEN = re.compile(rf"(?:[^\W_]|[@$])+(?:[{_APOSTROPHES}](?:[^\W_]|[@$])+)*")
_APOS = re.compile(f"[{_APOSTROPHES}]")
UNSPACED_CHARS = r"\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
"""Scripts written without spaces between words: Han (Chinese), kana (Japanese); the inside
of a regex character class."""
_UNSPACED = re.compile(f"[{UNSPACED_CHARS}]")
_UNSPACED_RUN = re.compile(f"[{UNSPACED_CHARS}]+")
_SIMPLE_TOKEN = re.compile(f"[a-z]+|[0-9]+|[{UNSPACED_CHARS}]+")
"""A token that leet/look-alike folding leaves alone and that is one script: Latin letters
only, digits only (a number), or one Chinese/Japanese run."""
_SCRIPT_PIECE = re.compile(f"[a-z]+|[0-9]+|[{UNSPACED_CHARS}]+")
"""The pieces a token mixing scripts splits into (see :func:`_simple_tokens_only`)."""
_UNSPACED_GAP = re.compile(f"[{UNSPACED_CHARS}] [{UNSPACED_CHARS}]")
"""Two Chinese/Japanese tokens in a row (joined without the space)."""
_HAN_WORD = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]+")
"""A run of CJK Unified Ideographs (every one a word character, so one token)."""
# ASCII text that the fast path cannot handle: letters mixed with leet characters, or three
# single letters in a row. Over-matching only sends text to the (equivalent) slow path.
_ASCII_SLOW = re.compile(
    r"[a-z]'*[0-9@$]|[0-9@$]'*[a-z]"
    r"|(?<![a-z0-9])[a-z][^a-z0-9]+[a-z][^a-z0-9]+[a-z](?![a-z0-9])")
_ASCII_SEPARATORS = str.maketrans(
    {c: ("\0" if c in "0123456789@$'" else c if "a" <= c <= "z" else " ")
     for c in map(chr, range(128))})
"""Lowercase ASCII: letters stay, digits/@/$/apostrophes (leet, numbers, contractions: the
general path) become NUL, everything else (NUL itself included) a space."""
SPELLED_MIN_LETTERS = 3
"""Single-letter tokens in a row joined into one word (3: ``a`` / ``plan b`` stay words)."""
_SPELLED_WORDS = re.compile(" " + "[a-z] " * SPELLED_MIN_LETTERS)
"""A spelled-out word in space-padded letters-only text."""


def is_unspaced(ch: str) -> bool:
    """True for a character of a script written without spaces (Han, kana)."""
    return _UNSPACED.match(ch) is not None


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """Normalized text plus, for each of its characters, the offset in the original.

    Attributes:
        text: word tokens (casefolded, NFKC-folded, leet-folded, Simplified) separated by
            single spaces, Chinese tokens joined.
        index: ``index[i]`` is the offset in ``original`` of ``text[i]`` (for a space: the first
            separator character it replaced).
        original: the text that was normalized.
        folded: positions in ``text`` that leet or look-alike folding changed.
    """

    text: str
    index: list[int]
    original: str = ""
    folded: frozenset[int] = field(default_factory=frozenset)

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


def _fold_char(chunk: str) -> str:
    """What :func:`_fold` makes of one character and the combining marks after it."""
    folded = unicodedata.normalize("NFKC", chunk).casefold()
    if not folded.isascii():
        # casefold can decompose again (e.g. U+0130); re-compose, then drop what is left over.
        folded = "".join(c for c in unicodedata.normalize("NFKC", folded) if not _is_dropped(c))
    return folded


class _FoldTable(dict[int, str]):
    """``str.translate`` table: code point -> its one-character fold, filled on first sight
    (so the steady state is one C-level ``translate``, not a Python loop per character).
    Characters that do not fold to exactly one character, and combining marks (which fold
    together with the character before them), map to :data:`_IRREGULAR`: text with any of
    them takes the general loop."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        folded = _fold_char(ch)
        if len(folded) != 1 or unicodedata.combining(ch):
            folded = _IRREGULAR
        self[code] = folded
        return folded


_FOLD_TABLE = _FoldTable()
_IRREGULAR = "\uffff"
"""Marks a character the table cannot fold alone. A noncharacter: should the text hold one
itself, the only effect is that the text takes the (equivalent) general loop."""


def _fold(text: str) -> tuple[str, list[int] | None]:
    """NFKC + casefold, dropping combining/format characters; returns the folded text and, when
    it is not a 1:1 mapping of ``text``, the original offset of each folded character."""
    if text.isascii():
        return text.lower(), None
    folded_1to1 = text.translate(_FOLD_TABLE)
    if _IRREGULAR not in folded_1to1:
        return folded_1to1, None
    return _fold_each(text)


def _fold_each(text: str) -> tuple[str, list[int]]:
    """:func:`_fold` the general way: character by character, combining marks with the
    character before them, with the offset map."""
    out: list[str] = []
    idx: list[int] = []
    n = len(text)
    i = 0
    while i < n:
        # A base character and the combining marks after it fold together (NFKC composes them).
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        folded = _fold_char(text[i:j])
        out.append(folded)
        idx.extend([i] * len(folded))
        i = j
    return "".join(out), idx


def _to_simplified(folded: str) -> str:
    """Traditional -> Simplified without moving offsets (see the module docstring)."""
    converted = to_simplified(folded)  # returns text without Han as it is
    if len(converted) == len(folded):
        return converted
    out = []
    for ch in folded:
        c = to_simplified(ch)
        out.append(c if len(c) == 1 else ch)
    return "".join(out)


_Token = tuple[str, list[int], list[bool]]
"""A token: its text, the folded-text offset of each character, and which were leet-folded."""


def _tokens(folded: str) -> list[_Token]:
    """Word tokens of the folded text, split at script changes, then leet-folded: a number
    next to Chinese is a number ("我有100块"), only Latin letters mixed with digits or symbols
    are leet ("k1ll你")."""
    out: list[_Token] = []
    for m in _TOKEN.finditer(folded):
        s = m.start()
        raw = m.group()
        if _SIMPLE_TOKEN.fullmatch(raw):  # nothing to fold or split
            out.append((raw, list(range(s, m.end())), [False] * len(raw)))
            continue
        at = 0
        for r in _UNSPACED_RUN.finditer(raw):  # Chinese/Japanese runs: never leet
            if r.start() > at:
                out += _latin_tokens(folded, s + at, raw[at:r.start()])
            out.append((r.group(), list(range(s + r.start(), s + r.end())),
                        [False] * len(r.group())))
            at = r.end()
        if at < len(raw):
            out += _latin_tokens(folded, s + at, raw[at:])
    return out


def _latin_tokens(folded: str, s: int, raw: str) -> list[_Token]:
    """A token's piece outside Chinese/Japanese (starting at ``s``), leet-folded, split at
    leftover ``@`` / ``$``."""
    out: list[_Token] = []
    word = _APOS.sub("", raw)
    positions = (list(range(s, s + len(raw))) if len(word) == len(raw)
                 else [s + k for k, c in enumerate(raw) if c not in _APOSTROPHES])
    if not word:
        return out
    word, changed = fold_token(word)
    flags = [a != b for a, b in zip(word, "".join(folded[p] for p in positions),
                                    strict=True)] if changed else [False] * len(word)
    # @ and $ left over (not leet here): separators, as any other symbol.
    pieces = ([(p.start(), p.end()) for p in re.finditer(r"[^@$]+", word)]
              if "@" in word or "$" in word else [(0, len(word))])
    for a, b in pieces:
        out.append((word[a:b], positions[a:b], flags[a:b]))
    return out


def _join_spelled(tokens: list[_Token]) -> list[_Token]:
    """Join runs of ``SPELLED_MIN_LETTERS`` or more single Latin letters into one token."""
    out: list[_Token] = []
    i, n = 0, len(tokens)
    while i < n:
        j = i
        while j < n and len(tokens[j][0]) == 1 and "a" <= tokens[j][0] <= "z":
            j += 1
        if j - i >= SPELLED_MIN_LETTERS:
            run = tokens[i:j]
            out.append(("".join(t[0] for t in run), [t[1][0] for t in run],
                        [t[2][0] for t in run]))
            i = j
        else:
            out.append(tokens[i])
            i += 1
    return out


def _normalize_plain_ascii(text: str) -> NormalizedText | None:
    """:func:`normalize` for ASCII text without leet or spelled-out letters (nearly every
    English transcript): its words are the tokens, as they are; ``None`` for any other text."""
    if not text.isascii():
        return None
    lower = text.lower()
    if _ASCII_SLOW.search(lower) is not None:
        return None
    if "'" not in lower:
        spans = [m.span() for m in _WORD.finditer(lower)]
        # each word's offsets, then the offset just past it (the space that follows it)
        index = [i for s, e in spans for i in range(s, e + 1)]
        if index:
            index.pop()  # no space after the last word
        return NormalizedText(" ".join([lower[s:e] for s, e in spans]), index, text,
                              frozenset())
    parts: list[str] = []
    index = []
    for m in _WORD.finditer(lower):
        s, e = m.span()
        word = m.group()
        if parts:
            parts.append(" ")
            index.append(index[-1] + 1)  # the separator run starts right after the last word
        if "'" in word:
            index.extend(s + k for k, c in enumerate(word) if c != "'")
            word = word.replace("'", "")
        else:
            index.extend(range(s, e))
        parts.append(word)
    return NormalizedText("".join(parts), index, text, frozenset())


def normalize(text: str) -> NormalizedText:
    """Normalize ``text`` for matching; see the module docstring."""
    plain = _normalize_plain_ascii(text)
    if plain is not None:
        return plain
    folded, fidx = _folded(text)
    simple = _unspaced_only(folded) or _simple_tokens_only(folded)
    if simple is None:
        return _normalize_tokens(text, (folded, fidx))
    ntext, index = simple
    if fidx is not None:
        index = [fidx[i] for i in index]
    return NormalizedText(ntext, index, text, frozenset())


def _unspaced_only(folded: str) -> tuple[str, list[int]] | None:
    """Normalized text and index for folded text whose every token is a Chinese/Japanese
    run (most Chinese transcripts): the runs joined, nothing to fold. ``None`` otherwise."""
    if _HAN_WORD.fullmatch(folded):  # one run of Han characters: the text is the token
        return folded, list(range(len(folded)))
    parts: list[str] = []
    index: list[int] = []
    for m in _TOKEN.finditer(folded):
        if _UNSPACED_RUN.fullmatch(m.group()) is None:
            return None
        parts.append(m.group())
        index.extend(range(m.start(), m.end()))
    return "".join(parts), index


def _simple_tokens_only(folded: str) -> tuple[str, list[int]] | None:
    """Normalized text and index for folded text whose every token is simple (see
    :data:`_SIMPLE_TOKEN`: English words and numbers next to Chinese, the usual code-switching)
    with no spelled-out letters and no two Chinese tokens in a row. ``None`` otherwise."""
    spans = [m.span() for m in _TOKEN.finditer(folded)]
    words = [folded[s:e] for s, e in spans]
    if not all(map(_SIMPLE_TOKEN.fullmatch, words)):
        # A token of Latin letters (or digits) against Chinese, "qq供应": the general path
        # splits it where the scripts meet; so can we, if each piece is simple and no letters
        # touch digits (that is leet's to fold: "k1ll").
        pieces = [m.span() for s, e in spans
                  for m in _SCRIPT_PIECE.finditer(folded, s, e)]
        if sum(e - s for s, e in pieces) != sum(e - s for s, e in spans):
            return None  # something in a token is not a simple piece (an apostrophe, @, é)
        if any(e1 == s2 and folded[e1 - 1].isascii() and folded[s2].isascii()
               for (_, e1), (s2, _) in pairwise(pieces)):
            return None  # letters against digits inside one token
        spans = pieces
        words = [folded[s:e] for s, e in spans]
    joined = " ".join(words)
    if _SPELLED_WORDS.search(f" {joined} ") or _UNSPACED_GAP.search(joined):
        return None
    # each token's offsets, then the offset just past it (the space that follows it)
    index = [i for s, e in spans for i in range(s, e + 1)]
    if index:
        index.pop()  # no space after the last token
    return joined, index


def _folded(text: str) -> tuple[str, list[int] | None]:
    folded, fidx = _fold(text)
    return _to_simplified(folded), fidx


def _normalize_tokens(text: str, folding: tuple[str, list[int] | None] | None = None,
                      ) -> NormalizedText:
    """:func:`normalize` the general way: fold (unless ``folding``, the result of
    :func:`_folded`, is given), tokenize, join."""
    folded, fidx = folding or _folded(text)
    tokens = _join_spelled(_tokens(folded))
    parts: list[str] = []
    index: list[int] = []
    leet: list[int] = []
    prev_end = 0
    prev_unspaced = False
    unspaced_at = _UNSPACED.match
    for word, positions, flags in tokens:
        # a token is all one script (split at script changes), so its first char decides
        unspaced = unspaced_at(word) is not None
        if parts and not (prev_unspaced and unspaced):
            parts.append(" ")
            # the space stands for the separator run that began here (or the script change)
            index.append(min(prev_end, positions[0]))
        if True in flags:
            base = len(index)
            leet.extend(base + k for k, f in enumerate(flags) if f)
        parts.append(word)
        index.extend(positions)
        prev_end = positions[-1] + 1
        prev_unspaced = unspaced
    if fidx is not None:
        index = [fidx[i] for i in index]
    return NormalizedText("".join(parts), index, text, frozenset(leet))


def normalize_text(text: str) -> str:
    """``normalize(text).text``, without the offset map; fast for plain ASCII text."""
    if text.isascii():
        lower = text.lower()
        separated = lower.translate(_ASCII_SEPARATORS)
        if "\0" not in separated:
            # Letters only (no digit, @, $ or apostrophe): the words are the letter runs.
            joined = " ".join(separated.split())
            if _SPELLED_WORDS.search(f" {joined} ") is None:
                return joined
        elif _ASCII_SLOW.search(lower) is None:
            words = _WORD.findall(lower)
            if "'" in lower:
                words = [w.replace("'", "") for w in words]
            return " ".join(words)
    return normalize(text).text


def normalize_term(term: str) -> str:
    """The normalized form of a rule term (what the matcher looks for)."""
    return normalize(term).text
