"""policy.rules: loading rule packs, and errors that name file and line."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from policy.rules import (
    MAX_TERM_CHARS,
    Category,
    Rule,
    RulePack,
    RulePackError,
    default_pack_path,
)

GOOD = """\
name: test-pack
version: "1.2"
description: a pack for tests
categories:
  abuse:
    severity: medium
    suggestion: review
    terms:
      - id: abuse.idiot
        term: "you idiot"
      - "Shut up, LOSER!"
  violence:
    severity: high
    suggestion: block
    terms:
      - "I'll kill you"
  spam:
    severity: low
    terms:
      - buy followers
"""


def write(tmp_path: Path, text: str | bytes, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def test_load_good_pack(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    pack = RulePack.load(path)
    assert pack.name == "test-pack"
    assert pack.version == "1.2"
    assert pack.description == "a pack for tests"
    assert pack.path == path
    assert pack.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert list(pack.categories) == ["abuse", "violence", "spam"]
    abuse = pack.categories["abuse"]
    assert isinstance(abuse, Category)
    assert (abuse.severity, abuse.suggestion) == ("medium", "review")
    assert pack.categories["spam"].suggestion == "review"  # default
    assert pack.rules == (
        Rule("abuse.idiot", "abuse", "you idiot", "you idiot", 10),
        Rule("abuse.shut_up_loser", "abuse", "Shut up, LOSER!", "shut up loser", 11),
        Rule("violence.ill_kill_you", "violence", "I'll kill you", "ill kill you", 16),
        Rule("spam.buy_followers", "spam", "buy followers", "buy followers", 20),
    )
    assert abuse.rules == pack.rules[:2]


def test_pack_is_immutable(tmp_path: Path) -> None:
    pack = RulePack.load(write(tmp_path, GOOD))
    with pytest.raises(AttributeError):
        pack.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        pack.categories["x"] = pack.categories["abuse"]  # type: ignore[index]


def test_version_keeps_its_spelling(tmp_path: Path) -> None:
    pack = RulePack.load(write(tmp_path, GOOD.replace('version: "1.2"', "version: 1.10")))
    assert pack.version == "1.10"


def test_version_is_optional(tmp_path: Path) -> None:
    assert RulePack.load(write(tmp_path, GOOD.replace('version: "1.2"\n', ""))).version == ""


def test_default_pack_loads() -> None:
    path = default_pack_path()
    assert path.name == "default.yaml" and path.parent.name == "packs"
    pack = RulePack.load(path)
    assert pack.name == "roomwarden-default"
    assert {"abuse", "violence", "fraud", "gambling", "drugs", "self_harm", "hate"} <= set(
        pack.categories)
    assert pack.categories["abuse"].rules[0].id == "abuse.idiot"
    assert len({r.normalized for r in pack.rules}) == len(pack.rules)  # no term listed twice


# Each bad pack marks the line the error must name with "#!" (or gives it explicitly).
BAD: list[tuple[str, str, str | bytes, int | None]] = [
    ("unknown severity", "unknown severity 'hgh' (expected one of low, medium, high, critical)",
     """\
     name: p
     categories:
       abuse:
         severity: hgh  #!
         terms: [a b]
     """, None),
    ("unknown suggestion", "unknown suggestion 'ban' (expected one of pass, review, block)",
     """\
     name: p
     categories:
       abuse:
         severity: low
         suggestion: ban  #!
         terms: [a b]
     """, None),
    ("unknown top key", "unknown key 'catgories' in the rule pack",
     """\
     name: p
     catgories:  #!
       abuse: {severity: low, terms: [a]}
     """, None),
    ("unknown category key", "unknown key 'term' in category 'abuse'",
     """\
     name: p
     categories:
       abuse:
         severity: low
         term: [a]  #!
     """, None),
    ("unknown term key", "unknown key 'regex' in a term",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms:
           - id: abuse.x
             regex: "x+"  #!
     """, None),
    ("missing name", "the rule pack is missing 'name'",
     """\
     version: "1"  #!
     categories:
       abuse: {severity: low, terms: [a]}
     """, None),
    ("empty name", "name must not be empty",
     """\
     name: ""  #!
     categories:
       abuse: {severity: low, terms: [a]}
     """, None),
    ("missing categories", "the rule pack is missing 'categories'",
     """\
     name: p  #!
     version: "1"
     """, None),
    ("empty categories", "categories must not be empty",
     """\
     name: p
     categories: {}  #!
     """, None),
    ("categories not a mapping", "categories must be a mapping, not a list",
     """\
     name: p
     categories:
       - abuse  #!
     """, None),
    ("missing severity", "category 'abuse' is missing 'severity'",
     """\
     name: p
     categories:
       abuse:
         terms: [a]  #!
     """, None),
    ("missing terms", "category 'abuse' is missing 'terms'",
     """\
     name: p
     categories:
       abuse:
         severity: low  #!
     """, None),
    ("no terms", "category 'abuse' has no terms",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms: []  #!
     """, None),
    ("bad category name", "bad category name 'Abuse Words'",
     """\
     name: p
     categories:
       Abuse Words:  #!
         severity: low
         terms: [a]
     """, None),
    ("empty term", "empty term",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms:
           - ok term
           - ""  #!
     """, None),
    ("null term", "empty term",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms:
           - id: abuse.x
             term:  #!
     """, None),
    ("blank term", "empty term",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms:
           - "   "  #!
     """, None),
    ("term too long", f"term too long ({MAX_TERM_CHARS + 1} characters, at most {MAX_TERM_CHARS})",
     f"""\
     name: p
     categories:
       abuse:
         severity: low
         terms:
           - {"a" * (MAX_TERM_CHARS + 1)}  #!
     """, None),
    ("term normalizes to empty", "term '?!...' normalizes to nothing",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms:
           - "?!..."  #!
     """, None),
    ("term not a string", "a term must be a string or a mapping with id and term",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms:
           - [a, b]  #!
     """, None),
    ("duplicate explicit id", "duplicate rule id 'abuse.x' (first defined on line 6)",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms:
           - {id: abuse.x, term: a}
       violence:
         severity: high
         terms:
           - {id: abuse.x, term: b}  #!
     """, None),
    ("duplicate derived id", "duplicate rule id 'abuse.you_idiot'",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms:
           - you idiot
           - "YOU, IDIOT!"  #!
     """, None),
    ("bad rule id", "bad rule id 'has space'",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms:
           - id: has space  #!
             term: x
     """, None),
    ("duplicate key", "duplicate key 'severity' in category 'abuse'",
     """\
     name: p
     categories:
       abuse:
         severity: low
         severity: high  #!
         terms: [a]
     """, None),
    ("top level not a mapping", "the rule pack must be a mapping, not a list",
     """\
     - name: p  #!
     """, None),
    ("top level scalar", "the rule pack must be a mapping",
     """\
     just some text  #!
     """, None),
    ("empty file", "empty rule pack", "", 1),
    ("invalid yaml", "not valid YAML",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms: [a, b
     other: x
     """, 6),
    ("invalid yaml indentation", "not valid YAML",
     """\
     name: p
     categories:
       abuse:
         severity: low
        terms: [a]
     """, 5),
    ("tab indentation", "not valid YAML",
     "name: p\ncategories:\n\tabuse: {severity: low, terms: [a]}\n", 3),
    ("invalid utf-8", "not valid UTF-8",
     b"name: p\ncategories:\n  abuse:\n    severity: low\n    terms: [\"caf\xe9\"]\n", 5),
    ("control character", "not valid YAML: character U+0007",
     "name: p\ncategories:\n  abuse:\n    severity: low\n    terms: [\"a\x07\"]\n", 5),
]


@pytest.mark.parametrize(("message", "source", "line"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_pack_names_file_and_line(tmp_path: Path, message: str, source: str | bytes,
                                      line: int | None) -> None:
    if line is None:
        assert isinstance(source, str)
        marked = [i for i, text in enumerate(textwrap.dedent(source).splitlines(), 1)
                  if "#!" in text]
        assert len(marked) == 1, "test data: mark exactly one line with #!"
        line = marked[0]
    path = write(tmp_path, source)
    with pytest.raises(RulePackError) as info:
        RulePack.load(path)
    err = info.value
    assert err.path == str(path)
    assert err.line == line, str(err)
    assert message in err.message
    assert str(err).startswith(f"{path}:{line}: ")


def test_error_str_format(tmp_path: Path) -> None:
    path = write(tmp_path, "name: p\ncategories:\n  a:\n    severity: hgh\n    terms: [x]\n")
    with pytest.raises(RulePackError) as info:
        RulePack.load(path)
    assert str(info.value) == (
        f"{path}:4: unknown severity 'hgh' (expected one of low, medium, high, critical)")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(RulePackError) as info:
        RulePack.load(path)
    assert info.value.line is None
    assert str(info.value) == f"{path}: rule pack not found"


def test_directory_is_not_a_pack(tmp_path: Path) -> None:
    with pytest.raises(RulePackError, match="is a directory"):
        RulePack.load(tmp_path)


def test_rule_pack_error_is_a_value_error() -> None:
    assert issubclass(RulePackError, ValueError)


def test_from_bytes_accepts_utf8_bom() -> None:
    pack = RulePack.from_bytes(b"\xef\xbb\xbf" + GOOD.encode(), "inline.yaml")
    assert pack.name == "test-pack"
    assert str(pack.path) == "inline.yaml"
