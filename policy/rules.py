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
        terms:
          - id: abuse.idiot
            term: "you idiot"
          - "shut up loser"

Terms are matched on word boundaries after :func:`policy.normalize.normalize` (case, width and
punctuation folded), so write them as plain words.

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

__all__ = [
    "MAX_TERM_CHARS",
    "SEVERITIES",
    "SUGGESTIONS",
    "Category",
    "Rule",
    "RulePack",
    "RulePackError",
    "default_pack_path",
]

SEVERITIES: tuple[str, ...] = get_args(Severity)
SUGGESTIONS: tuple[str, ...] = get_args(Suggestion)
MAX_TERM_CHARS = 200

_TOP_KEYS = ("name", "version", "description", "categories")
_CATEGORY_KEYS = ("severity", "suggestion", "description", "terms")
_TERM_KEYS = ("id", "term")
_CATEGORY_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
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
class Category:
    """A category of rules sharing a severity and a suggested action."""

    name: str
    severity: Severity
    suggestion: Suggestion
    rules: tuple[Rule, ...]
    description: str = ""


@dataclass(frozen=True, slots=True)
class RulePack:
    """A loaded, validated rule pack (immutable).

    Attributes:
        name / version: the pack's own identification (``version`` may be empty).
        sha256: hex sha256 of the file's bytes: what alerts cite as ``policy_hash``.
        path: where it was loaded from.
        categories: category name -> :class:`Category`, in file order.
        rules: every rule of every category, in file order.
        description: free text from the pack.
    """

    name: str
    version: str
    sha256: str
    path: Path
    categories: Mapping[str, Category]
    rules: tuple[Rule, ...]
    description: str = ""

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


class _Parser:
    def __init__(self, path: Path, data: bytes) -> None:
        self.path = path
        self.data = data

    def error(self, node_or_line: yaml.Node | int | None, message: str) -> RulePackError:
        if isinstance(node_or_line, yaml.Node):
            line: int | None = node_or_line.start_mark.line + 1
        else:
            line = node_or_line
        return RulePackError(self.path, line, message)

    # -- document ------------------------------------------------------------------------------

    def parse(self) -> RulePack:
        try:
            text = self.data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = self.data[: exc.start].count(b"\n") + 1
            raise self.error(line, f"not valid UTF-8 (byte 0x{self.data[exc.start]:02x} at "
                                   f"offset {exc.start})") from None
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
        seen: dict[str, int] = {}
        for cat_name, (key_node, cat_node) in cats.items():
            if not _CATEGORY_NAME.match(cat_name):
                raise self.error(key_node, f"bad category name {cat_name!r} (use lowercase "
                                           "letters, digits and _, starting with a letter)")
            category = self.category(cat_name, cat_node, seen)
            categories[cat_name] = category
            rules.extend(category.rules)
        return RulePack(name=name, version=version,
                        sha256=hashlib.sha256(self.data).hexdigest(), path=self.path,
                        categories=MappingProxyType(categories), rules=tuple(rules),
                        description=description)

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
        terms_node = self.required(fields, node, "terms", what)
        if not isinstance(terms_node, yaml.SequenceNode):
            raise self.error(terms_node, f"terms of {what} must be a list")
        if not terms_node.value:
            raise self.error(terms_node, f"{what} has no terms")
        rules = tuple(self.rule(name, item, seen) for item in terms_node.value)
        return Category(name=name, severity=severity, suggestion=suggestion,  # type: ignore[arg-type]
                        rules=rules, description=description)

    def rule(self, category: str, node: yaml.Node, seen: dict[str, int]) -> Rule:
        rule_id: str | None = None
        id_node: yaml.Node = node
        if isinstance(node, yaml.ScalarNode):
            term_node = node
        elif isinstance(node, yaml.MappingNode):
            fields = self.mapping(node, "a term", _TERM_KEYS)
            term_node = self.required(fields, node, "term", "a term")
            if "id" in fields:
                id_node = fields["id"][1]
                rule_id = self.string(id_node, "id")
                if not _RULE_ID.match(rule_id) or len(rule_id) > _MAX_RULE_ID_CHARS:
                    raise self.error(id_node, f"bad rule id {rule_id!r} (letters, digits and "
                                              f"._:- only, at most {_MAX_RULE_ID_CHARS} chars)")
        else:
            raise self.error(node, "a term must be a string or a mapping with id and term")
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
        line = id_node.start_mark.line + 1
        if rule_id in seen:
            raise self.error(line, f"duplicate rule id {rule_id!r} (first defined on line "
                                   f"{seen[rule_id]})")
        seen[rule_id] = line
        return Rule(id=rule_id, category=category, term=term, normalized=normalized,
                    line=term_node.start_mark.line + 1)

    # -- node helpers --------------------------------------------------------------------------

    def mapping(self, node: yaml.Node, what: str,
                allowed: tuple[str, ...] | None) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping node as ``key -> (key node, value node)``; rejects duplicate keys and, when
        ``allowed`` is given, unknown ones."""
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping, not {_kind(node)}")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.error(key_node, f"keys of {what} must be strings")
            key = key_node.value
            if key in out:
                raise self.error(key_node, f"duplicate key {key!r} in {what}")
            if allowed is not None and key not in allowed:
                raise self.error(key_node, f"unknown key {key!r} in {what} (expected "
                                           f"{', '.join(allowed)})")
            out[key] = (key_node, value_node)
        return out

    def required(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], node: yaml.Node,
                 key: str, what: str) -> yaml.Node:
        if key not in fields:
            raise self.error(node, f"{what} is missing {key!r}")
        return fields[key][1]

    def string(self, node: yaml.Node, what: str) -> str:
        """A scalar's text as written (so ``version: 1.10`` stays ``"1.10"``); null -> ``""``."""
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, f"{what} must be a string, not {_kind(node)}")
        if node.tag == "tag:yaml.org,2002:null" and node.style is None:
            return ""
        return str(node.value)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"{node.value!r}"
