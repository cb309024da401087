"""Compile a rule pack's ``regex`` terms, refusing patterns that could stall the engine.

Patterns are Python :mod:`re` syntax compiled with ``re.IGNORECASE`` only, and matched against
the transcript text as transcribed (not normalized: a regex says exactly what it wants).

Python's ``re`` backtracks, so some patterns take exponential time on a short unlucky input
("catastrophic backtracking"). The classic shape is a quantifier over something that itself
contains a quantifier (``(a+)+``, ``(\\w*\\s?)*``); a pack refuses any repeat (``*``, ``+``,
``{m,n}`` with n > 1) nested inside another. Alternations under a repeat whose branches can
match the same text (``(a|a)*``) are not detected; transcripts are short (one utterance) and
patterns are capped at :data:`MAX_REGEX_CHARS`, which bounds what such a pattern can cost.
Patterns that can match the empty string are refused too (they would match every transcript).
"""

from __future__ import annotations

import re
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

__all__ = ["MAX_REGEX_CHARS", "REGEX_FLAGS", "compile_rule_regex"]

MAX_REGEX_CHARS = 500
REGEX_FLAGS = re.IGNORECASE
_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT}


def compile_rule_regex(pattern: str) -> re.Pattern[str]:
    """The compiled pattern; raises ``ValueError`` saying what is wrong with it."""
    if len(pattern) > MAX_REGEX_CHARS:
        raise ValueError(f"regex too long ({len(pattern)} characters, at most "
                         f"{MAX_REGEX_CHARS})")
    try:
        compiled = re.compile(pattern, REGEX_FLAGS)
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
    if _nested_repeat(sre_parse.parse(pattern, REGEX_FLAGS), inside=False):
        raise ValueError(f"regex {pattern!r} nests a repeat inside a repeat (like (a+)+), "
                         "which can backtrack for ever; rewrite it without the nesting")
    if compiled.search("") is not None:
        raise ValueError(f"regex {pattern!r} matches the empty string (it would flag "
                         "every transcript)")
    return compiled


def _nested_repeat(items: Any, *, inside: bool) -> bool:
    """Whether a repeat that can match more than once sits inside another one."""
    for op, av in items:
        if op in _REPEATS:
            _low, high, sub = av
            unbounded = high is sre_constants.MAXREPEAT or high > 1
            if unbounded and inside:
                return True
            if _nested_repeat(sub, inside=inside or unbounded):
                return True
        elif op is sre_constants.SUBPATTERN:
            if _nested_repeat(av[-1], inside=inside):
                return True
        elif op is sre_constants.BRANCH:
            if any(_nested_repeat(b, inside=inside) for b in av[1]):
                return True
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            if _nested_repeat(av[1], inside=inside):
                return True
        elif op is sre_constants.ATOMIC_GROUP:
            if _nested_repeat(av, inside=inside):
                return True
    return False
