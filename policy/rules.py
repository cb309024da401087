"""Rule packs: the YAML files that say what to flag.

A pack names categories; each category has a severity, a suggested action and a list of terms
(phrases). A term is either a bare string, whose id is derived from the category and the
normalized term (``"shut up loser"`` in ``abuse`` -> ``abuse.shut_up_loser``), or a mapping with
an explicit ``id``::

    name: roomwarden-default
    version: "2026.11.1"
    description: optional free text
    categories:
      abuse:
        severity: medium        # low|medium|high|critical
        suggestion: review      # pass|review|block (default: review)
        description: optional free text
        actions: [operator_alert, host_warning]   # optional, see policy.taxonomy
        terms:
          - id: abuse.idiot
            term: "you idiot"
          - "shut up loser"
        regex:                  # optional: Python re patterns (policy.regex_check)
          - id: abuse.re.you_are_a_x
            pattern: "you(?: are|'re) an? (?:idiot|moron)"
          - "shut up,? (?:loser|idiot)"   # id: abuse.re_<first 8 hex of sha256(pattern)>
        allow:                  # optional: phrases inside which a match is not a violation
          - "kill it at the gym"

Category names come from :mod:`policy.taxonomy` (``politics``, ``sexual``, ``abuse``, ...,
or ``custom.<name>``); anything else is refused, listing the known names. A category needs
``terms`` or ``regex`` (or both).

Terms are matched on word boundaries after :func:`policy.normalize.normalize` (case, width and
punctuation folded), so write them as plain words.

Bounds, checked before anything is parsed so an absurd file is refused at once (no YAML parse,
no automaton): the file is at most :data:`MAX_PACK_BYTES` (20 MiB) and no line is longer than
:data:`MAX_LINE_CHARS` (10,000 characters: a term is at most :data:`MAX_TERM_CHARS`, so only a
pasted blob is longer). After parsing, every term (and allow phrase) is at most
:data:`MAX_TERM_CHARS` characters and every regex at most
:data:`policy.regex_check.MAX_REGEX_CHARS`. Bytes that are not UTF-8 are refused with their line
and byte offset.

Every problem in a pack raises :class:`RulePackError` naming the file and line, e.g.
``rules.yaml:12: unknown severity 'hgh' (expected one of low, medium, high, critical)``. The
parser walks YAML nodes (``yaml.compose``), so each value keeps the line it was written on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import get_args

import yaml

from policy.frames import Severity, Suggestion
from policy.normalize import normalize_term
from policy.pack_nodes import NodeReader
from policy.regex_check import compile_rule_regex
from policy.taxonomy import ACTIONS, DEFAULT_ACTIONS, Action, category_problem

__all__ = [
    "MAX_LINE_CHARS",
    "MAX_PACK_BYTES",
    "MAX_TERM_CHARS",
    "SEVERITIES",
    "SUGGESTIONS",
    "Category",
    "RegexRule",
    "Rule",
    "RulePack",
    "RulePackError",
    "default_pack_path",
]

SEVERITIES: tuple[str, ...] = get_args(Severity)
SUGGESTIONS: tuple[str, ...] = get_args(Suggestion)
MAX_TERM_CHARS = 200
"""Longest term or allow phrase, in characters: a spoken phrase, never a paragraph."""
MAX_PACK_BYTES = 20 * 1024 * 1024
"""Largest pack file (20 MiB: ~500,000 terms; the default pack is ~8 KB)."""
MAX_LINE_CHARS = 10_000
"""Longest line in a pack, checked before parsing (room for a flow list of terms)."""

_TOP_KEYS = ("name", "version", "description", "categories")
_CATEGORY_KEYS = ("severity", "suggestion", "description", "actions", "terms", "regex",
                  "allow")
_REGEX_KEYS = ("id", "pattern")
_TERM_KEYS = ("id", "term")
_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*\Z")
_MAX_RULE_ID_CHARS = 128


class RulePackError(ValueError):
    """A rule pack that cannot be used. ``str()`` is ``path:line: message`` (or ``path: message``
    when no line applies, e.g. a missing file)."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Rule:
    """One term to look for.

    Attributes:
        id: stable rule id (alerts carry it), unique within the pack.
        category: the category the rule belongs to.
        term: the term as written in the pack.
        normalized: the term after normalization: what is actually matched.
        line: the pack line the term is on.
    """

    id: str
    category: str
    term: str
    normalized: str
    line: int = 0


@dataclass(frozen=True, slots=True)
class RegexRule:
    """One ``regex`` entry of a category (see :mod:`policy.regex_check` for flags and limits).

    Attributes:
        id: stable rule id, unique within the pack (terms and regexes share one id space).
        category: the category the rule belongs to.
        pattern: the pattern as written; ``compiled`` is it compiled.
        line: the pack line the pattern is on.
    """

    id: str
    category: str
    pattern: str
    compiled: re.Pattern[str]
    line: int = 0


@dataclass(frozen=True, slots=True)
class Category:
    """A category of rules sharing a severity, a suggested action and recommended actions.

    ``allow`` holds normalized phrases: a match of this category that overlaps one of them in
    the transcript is not reported (``kill it at the gym``)."""

    name: str
    severity: Severity
    suggestion: Suggestion
    rules: tuple[Rule, ...]
    description: str = ""
    actions: tuple[Action, ...] = DEFAULT_ACTIONS
    regexes: tuple[RegexRule, ...] = ()
    allow: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RulePack:
    """A loaded, validated rule pack (immutable).

    Attributes:
        name / version: the pack's own identification (``version`` may be empty).
        sha256: hex sha256 of the file's bytes: what alerts cite as ``policy_hash``.
        path: where it was loaded from.
        categories: category name -> :class:`Category`, in file order.
        rules: every term rule of every category, in file order.
        description: free text from the pack.
        regex_rules: every regex rule of every category, in file order.
    """

    name: str
    version: str
    sha256: str
    path: Path
    categories: Mapping[str, Category]
    rules: tuple[Rule, ...]
    description: str = ""
    regex_rules: tuple[RegexRule, ...] = ()

    @classmethod
    def load(cls, path: str | Path) -> RulePack:
        """Read and validate the pack at ``path``; raises :class:`RulePackError`."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise RulePackError(p, None, "rule pack not found") from None
        except IsADirectoryError:
            raise RulePackError(p, None, "rule pack is a directory, not a file") from None
        except OSError as exc:
            raise RulePackError(p, None, f"cannot read rule pack: {exc.strerror or exc}") from None
        return cls.from_bytes(data, p)

    @classmethod
    def from_bytes(cls, data: bytes, path: str | Path = "<rules>") -> RulePack:
        """Parse a pack from its file contents; ``path`` is only used in errors and ``.path``."""
        return _Parser(Path(path), data).parse()


def default_pack_path() -> Path:
    """The default English pack shipped with the package (``policy/packs/default.yaml``)."""
    return Path(__file__).parent / "packs" / "default.yaml"


def derive_rule_id(category: str, normalized: str) -> str:
    """Id of a bare-string term: ``category.normalized_words_joined_by_underscores``."""
    return f"{category}.{normalized.replace(' ', '_')}"


class _Parser(NodeReader):
    def __init__(self, path: Path, data: bytes) -> None:
        super().__init__(path, RulePackError)
        self.data = data

    # -- document ------------------------------------------------------------------------------

    def parse(self) -> RulePack:
        if len(self.data) > MAX_PACK_BYTES:
            raise self.error(None, f"rule pack too large ({len(self.data)} bytes, at most "
                                   f"{MAX_PACK_BYTES})")
        try:
            text = self.data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = self.data[: exc.start].count(b"\n") + 1
            raise self.error(line, f"not valid UTF-8 (byte 0x{self.data[exc.start]:02x} at "
                                   f"offset {exc.start})") from None
        self.check_line_lengths(text)
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            yaml_line = mark.line + 1 if mark is not None else None
            problem = exc.problem or "invalid YAML"
            if exc.context:
                problem += f" ({exc.context})"
            raise self.error(yaml_line, f"not valid YAML: {problem}") from None
        except yaml.reader.ReaderError as exc:  # characters YAML does not allow
            line = text[: exc.position].count("\n") + 1
            char = exc.character
            code = char if isinstance(char, int) else ord(str(char)[:1] or "\0")
            raise self.error(line, f"not valid YAML: character U+{code:04X} is not allowed"
                             ) from None
        except yaml.YAMLError as exc:
            raise self.error(None, f"not valid YAML: {exc}") from None
        if root is None:
            raise self.error(1, "empty rule pack (expected a mapping with name and categories)")
        top = self.mapping(root, "the rule pack", _TOP_KEYS)
        name = self.string(self.required(top, root, "name", "the rule pack"), "name")
        if not name:
            raise self.error(top["name"][1], "name must not be empty")
        version = self.string(top["version"][1], "version") if "version" in top else ""
        description = (self.string(top["description"][1], "description")
                       if "description" in top else "")
        cats_node = self.required(top, root, "categories", "the rule pack")
        cats = self.mapping(cats_node, "categories", None)
        if not cats:
            raise self.error(cats_node, "categories must not be empty")

        categories: dict[str, Category] = {}
        rules: list[Rule] = []
        regex_rules: list[RegexRule] = []
        seen: dict[str, int] = {}
        for cat_name, (key_node, cat_node) in cats.items():
            problem = category_problem(cat_name)
            if problem is not None:
                raise self.error(key_node, problem)
            category = self.category(cat_name, cat_node, seen)
            categories[cat_name] = category
            rules.extend(category.rules)
            regex_rules.extend(category.regexes)
        return RulePack(name=name, version=version,
                        sha256=hashlib.sha256(self.data).hexdigest(), path=self.path,
                        categories=MappingProxyType(categories), rules=tuple(rules),
                        description=description, regex_rules=tuple(regex_rules))

    def check_line_lengths(self, text: str) -> None:
        """Refuse a line longer than :data:`MAX_LINE_CHARS` before YAML sees it."""
        for number, line in enumerate(text.split("\n"), 1):
            if len(line) > MAX_LINE_CHARS:
                raise self.error(number, f"line too long ({len(line)} characters, at most "
                                         f"{MAX_LINE_CHARS}; a term is at most "
                                         f"{MAX_TERM_CHARS})")

    def category(self, name: str, node: yaml.Node, seen: dict[str, int]) -> Category:
        what = f"category {name!r}"
        fields = self.mapping(node, what, _CATEGORY_KEYS)
        sev_node = self.required(fields, node, "severity", what)
        severity = self.string(sev_node, "severity")
        if severity not in SEVERITIES:
            raise self.error(sev_node, f"unknown severity {severity!r} (expected one of "
                                       f"{', '.join(SEVERITIES)})")
        suggestion = "review"
        if "suggestion" in fields:
            sug_node = fields["suggestion"][1]
            suggestion = self.string(sug_node, "suggestion")
            if suggestion not in SUGGESTIONS:
                raise self.error(sug_node, f"unknown suggestion {suggestion!r} (expected one of "
                                           f"{', '.join(SUGGESTIONS)})")
        description = (self.string(fields["description"][1], "description")
                       if "description" in fields else "")
        actions = self.actions(fields["actions"][1]) if "actions" in fields else DEFAULT_ACTIONS
        if "terms" not in fields and "regex" not in fields:
            raise self.error(node, f"{what} is missing 'terms'")
        rules: tuple[Rule, ...] = ()
        if "terms" in fields:
            terms_node = self.sequence(fields["terms"][1], f"terms of {what}")
            if not terms_node.value:
                raise self.error(terms_node, f"{what} has no terms")
            rules = tuple(self.rule(name, item, seen) for item in terms_node.value)
        regexes: tuple[RegexRule, ...] = ()
        if "regex" in fields:
            regex_node = self.sequence(fields["regex"][1], f"regex of {what}")
            regexes = tuple(self.regex(name, item, seen) for item in regex_node.value)
        allow: tuple[str, ...] = ()
        if "allow" in fields:
            allow = tuple(self.allow_phrase(item)
                          for item in self.sequence(fields["allow"][1], f"allow of {what}").value)
        return Category(name=name, severity=severity, suggestion=suggestion,  # type: ignore[arg-type]
                        rules=rules, description=description, actions=actions,
                        regexes=regexes, allow=allow)

    def actions(self, node: yaml.Node) -> tuple[Action, ...]:
        out: list[Action] = []
        for item in self.sequence(node, "actions").value:
            action = self.string(item, "an action")
            if action not in ACTIONS:
                raise self.error(item, f"unknown action {action!r} (expected one of "
                                       f"{', '.join(ACTIONS)})")
            if action in out:
                raise self.error(item, f"action {action!r} listed twice")
            out.append(action)  # type: ignore[arg-type]
        if not out:
            raise self.error(node, "actions must not be empty (omit it for operator_alert)")
        return tuple(out)

    def entry(self, node: yaml.Node, what: str, keys: tuple[str, ...],
              value_key: str) -> tuple[yaml.Node, yaml.Node, str | None]:
        """A rule entry written as a bare string or as ``{id, <value_key>}``: the value's node,
        the node its line is claimed on, and the explicit id (None: derive one)."""
        if isinstance(node, yaml.ScalarNode):
            return node, node, None
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a string or a mapping with id and "
                                   f"{value_key}")
        fields = self.mapping(node, what, keys)
        value_node = self.required(fields, node, value_key, what)
        if "id" not in fields:
            return value_node, node, None
        id_node = fields["id"][1]
        return value_node, id_node, self.rule_id(id_node)

    def regex(self, category: str, node: yaml.Node, seen: dict[str, int]) -> RegexRule:
        pattern_node, id_node, rule_id = self.entry(node, "a regex", _REGEX_KEYS, "pattern")
        pattern = self.string(pattern_node, "pattern")
        if not pattern.strip():
            raise self.error(pattern_node, "empty regex")
        try:
            compiled = compile_rule_regex(pattern)
        except ValueError as exc:
            raise self.error(pattern_node, str(exc)) from None
        if rule_id is None:
            digest = hashlib.sha256(pattern.encode()).hexdigest()[:8]
            rule_id = f"{category}.re_{digest}"
        self.claim(rule_id, id_node.start_mark.line + 1, seen)
        return RegexRule(id=rule_id, category=category, pattern=pattern, compiled=compiled,
                         line=pattern_node.start_mark.line + 1)

    def allow_phrase(self, node: yaml.Node) -> str:
        phrase = self.string(node, "an allow phrase").strip()
        if not phrase:
            raise self.error(node, "empty allow phrase")
        if len(phrase) > MAX_TERM_CHARS:
            raise self.error(node, f"allow phrase too long ({len(phrase)} characters, at most "
                                   f"{MAX_TERM_CHARS})")
        normalized = normalize_term(phrase)
        if not normalized:
            raise self.error(node, f"allow phrase {phrase!r} normalizes to nothing")
        return normalized

    def rule_id(self, node: yaml.Node) -> str:
        rule_id = self.string(node, "id")
        if not _RULE_ID.match(rule_id) or len(rule_id) > _MAX_RULE_ID_CHARS:
            raise self.error(node, f"bad rule id {rule_id!r} (letters, digits and "
                                   f"._:- only, at most {_MAX_RULE_ID_CHARS} chars)")
        return rule_id

    def claim(self, rule_id: str, line: int, seen: dict[str, int]) -> None:
        """Record ``rule_id`` as defined on ``line``; a second definition names both lines."""
        if rule_id in seen:
            raise self.error(line, f"duplicate rule id {rule_id!r} (first defined on line "
                                   f"{seen[rule_id]})")
        seen[rule_id] = line

    def rule(self, category: str, node: yaml.Node, seen: dict[str, int]) -> Rule:
        term_node, id_node, rule_id = self.entry(node, "a term", _TERM_KEYS, "term")
        term = self.string(term_node, "term").strip()
        if not term:
            raise self.error(term_node, "empty term")
        if len(term) > MAX_TERM_CHARS:
            raise self.error(term_node, f"term too long ({len(term)} characters, at most "
                                        f"{MAX_TERM_CHARS})")
        normalized = normalize_term(term)
        if not normalized:
            raise self.error(term_node, f"term {term!r} normalizes to nothing (it has no "
                                        "letters or digits)")
        if rule_id is None:
            rule_id = derive_rule_id(category, normalized)
        self.claim(rule_id, id_node.start_mark.line + 1, seen)
        return Rule(id=rule_id, category=category, term=term, normalized=normalized,
                    line=term_node.start_mark.line + 1)
