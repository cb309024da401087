"""A pack's regex terms and allow-lists, as the engine uses them.

:class:`ExtraRules` is the small piece of matching that is not the term automaton
(:mod:`policy.term_index`):

* :meth:`ExtraRules.find_regex`: every ``regex`` rule of the pack searched in the transcript text
  as transcribed (``re.IGNORECASE``; see :mod:`policy.regex_check`). Matches come back as
  :class:`~policy.term_index.Found` with keys after the term rules' (``key_offset + i``), so the
  engine resolves overlaps and builds alerts for them exactly as for terms. Their kind is
  ``regex``: the pattern matched the text itself, with no normalization or evasion layer.
* :meth:`ExtraRules.allowed`: whether a match of a category overlaps one of that category's
  ``allow`` phrases in the same text (found like terms: normalized, on word boundaries), so
  "I'm going to kill it at the gym" does not alert on ``kill it`` when the pack allows
  ``kill it at the gym``. An allow phrase only suppresses its own category.
"""

from __future__ import annotations

from policy.matcher import AutomatonMatcher
from policy.normalize import normalize
from policy.rules import Rule, RulePack
from policy.term_index import Found

__all__ = ["ExtraRules"]


class ExtraRules:
    """Regex rules and allow-lists of one pack.

    Args:
        pack: the rule pack.
        key_offset: the key of the first regex rule (the number of term rules), so regex keys
            index ``pack.rules + self.rules``.
    """

    def __init__(self, pack: RulePack, key_offset: int) -> None:
        self._regexes = pack.regex_rules
        self._offset = key_offset
        self.rules: tuple[Rule, ...] = tuple(
            Rule(id=r.id, category=r.category, term=r.pattern, normalized=r.pattern, line=r.line)
            for r in pack.regex_rules)
        """The regex rules as :class:`Rule` (term = pattern), in key order."""
        self._allow_category: list[str] = []
        phrases: list[tuple[str, int]] = []
        for category in pack.categories.values():
            for phrase in category.allow:
                phrases.append((phrase, len(self._allow_category)))
                self._allow_category.append(category.name)
        self._allow = AutomatonMatcher(phrases) if phrases else None
        self._allow_cache: tuple[str, list[tuple[str, int, int]]] = ("", [])

    def find_regex(self, text: str) -> list[Found]:
        """Every regex rule match in ``text`` (non-overlapping per rule, as ``re.finditer``)."""
        out: list[Found] = []
        for i, rule in enumerate(self._regexes):
            for m in rule.compiled.finditer(text):
                if m.end() > m.start():
                    out.append(Found(m.start(), m.end(), self._offset + i, "regex"))
        return out

    def allowed(self, text: str, category: str, start: int, end: int) -> bool:
        """Whether ``[start, end)`` of ``text`` overlaps an allow phrase of ``category``."""
        if self._allow is None:
            return False
        return any(c == category and s < end and start < e
                   for c, s, e in self._allowed_spans(text))

    def _allowed_spans(self, text: str) -> list[tuple[str, int, int]]:
        """(category, start, end) of every allow phrase in ``text``; the last text is cached
        (the engine asks once per match of the same transcript)."""
        cached_text, spans = self._allow_cache
        if cached_text == text and text:
            return spans
        assert self._allow is not None
        norm = normalize(text)
        spans = []
        for m in self._allow.find_all(norm.text):
            s, e = norm.original_span(m.start, m.end)
            spans.append((self._allow_category[m.key], s, e))
        self._allow_cache = (text, spans)
        return spans
