"""policy.rules: loading rule packs, and errors that name file and line."""

from __future__ import annotations

import hashlib
import textwrap
import time
from pathlib import Path

import pytest

from policy.rules import (
    MAX_PACK_BYTES,
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
    ("bad category name", "unknown category 'Abuse Words' (expected one of politics, sexual",
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
    path = write(tmp_path, "name: p\ncategories:\n  abuse:\n    severity: hgh\n    terms: [x]\n")
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


# -- taxonomy, actions, regex terms, allow-lists, size bounds (issue 5) -------------------------

RICH = """\
name: rich
categories:
  abuse:
    severity: medium
    actions: [operator_alert, host_warning]
    terms: [you idiot]
    regex:
      - id: abuse.re.you_are_a
        pattern: "you(?: are|'re) an? (?:idiot|moron)"
      - "shut up,? (?:loser|idiot)"
  violence:
    severity: high
    suggestion: block
    actions: [operator_alert, recommend_remove, recommend_close_room]
    terms: [kill it]
    allow: ["Kill it at the gym!"]
  custom.crypto_shill:
    severity: low
    regex: ["buy \\\\d+ coins"]
  spam:
    severity: low
    terms: [buy followers]
"""


def test_rich_pack(tmp_path: Path) -> None:
    pack = RulePack.load(write(tmp_path, RICH))
    abuse, violence = pack.categories["abuse"], pack.categories["violence"]
    assert abuse.actions == ("operator_alert", "host_warning")
    assert violence.actions == ("operator_alert", "recommend_remove", "recommend_close_room")
    assert pack.categories["spam"].actions == ("operator_alert",)  # default
    assert violence.allow == ("kill it at the gym",)  # normalized
    assert [r.id for r in pack.regex_rules] == [
        "abuse.re.you_are_a",
        "abuse.re_" + hashlib.sha256(b"shut up,? (?:loser|idiot)").hexdigest()[:8],
        "custom.crypto_shill.re_" + hashlib.sha256(b"buy \\d+ coins").hexdigest()[:8]]
    assert [r.line for r in pack.regex_rules] == [9, 10, 19]
    assert pack.regex_rules[0].compiled.search("YOU'RE AN IDIOT")  # IGNORECASE
    assert pack.categories["custom.crypto_shill"].rules == ()  # regex-only category


def test_taxonomy_names() -> None:
    from policy.taxonomy import CANONICAL, CATEGORIES, category_problem
    assert set(CATEGORIES) >= {"politics", "sexual", "abuse", "fraud", "gambling", "drugs",
                               "violence", "minors", "ads", "self_harm"}
    assert CANONICAL["spam"] == "ads" and CANONICAL["scam"] == "fraud"
    assert category_problem("custom.my_thing") is None
    assert category_problem("custom.") is not None
    assert "unknown category 'weapons'" in str(category_problem("weapons"))


BAD_ISSUE5: list[tuple[str, str, str]] = [
    ("unknown category", "unknown category 'weapons' (expected one of politics, sexual, abuse",
     """\
     name: p
     categories:
       weapons:  #!
         severity: low
         terms: [a]
     """),
    ("bad custom category", "bad custom category name 'custom.Big'",
     """\
     name: p
     categories:
       custom.Big:  #!
         severity: low
         terms: [a]
     """),
    ("unknown action", "unknown action 'ban' (expected one of operator_alert, host_warning",
     """\
     name: p
     categories:
       abuse:
         severity: low
         actions: [operator_alert, ban]  #!
         terms: [a]
     """),
    ("broken regex", "invalid regex '(unclosed': missing ), unterminated subpattern",
     """\
     name: p
     categories:
       abuse:
         severity: low
         regex:
           - "(unclosed"  #!
     """),
    ("catastrophic regex", "nests a repeat inside a repeat",
     """\
     name: p
     categories:
       abuse:
         severity: low
         regex:
           - id: abuse.re.bad
             pattern: "(a+)+b"  #!
     """),
    ("regex matching everything", "matches the empty string",
     """\
     name: p
     categories:
       abuse:
         severity: low
         regex: ["x*"]  #!
     """),
    ("duplicate id term/regex", "duplicate rule id 'abuse.x' (first defined on line 6)",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms:
           - {id: abuse.x, term: a}
         regex:
           - {id: abuse.x, pattern: b+}  #!
     """),
    ("no terms nor regex", "category 'abuse' is missing 'terms'",
     """\
     name: p
     categories:
       abuse:
         severity: low  #!
     """),
    ("empty allow phrase", "empty allow phrase",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms: [a]
         allow: [""]  #!
     """),
    ("allow not a list", "allow of category 'abuse' must be a list",
     """\
     name: p
     categories:
       abuse:
         severity: low
         terms: [a]
         allow: kill it at the gym  #!
     """),
    ("long line", "line too long (10007 characters, at most 10000",
     f"""\
     name: p
     categories:
       abuse:
         severity: low
         terms:
           - {"b" * 9995}  #!
     """),
]


@pytest.mark.parametrize(("message", "source"), [b[1:] for b in BAD_ISSUE5],
                         ids=[b[0] for b in BAD_ISSUE5])
def test_issue5_bad_packs_name_line_and_reason(tmp_path: Path, message: str, source: str) -> None:
    lines = textwrap.dedent(source).splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "#!" in text)
    path = write(tmp_path, source)
    with pytest.raises(RulePackError) as info:
        RulePack.load(path)
    assert (info.value.line, message in info.value.message) == (line, True), str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_ten_megabyte_term_is_refused_quickly(tmp_path: Path) -> None:
    term = "x" * (10 * 1024 * 1024)
    path = write(tmp_path, f"name: p\ncategories:\n  abuse:\n    severity: low\n"
                           f"    terms:\n      - ok\n      - {term}\n")
    started = time.perf_counter()
    with pytest.raises(RulePackError) as info:
        RulePack.load(path)
    elapsed = time.perf_counter() - started
    assert info.value.line == 7
    assert "line too long" in info.value.message
    assert elapsed < 0.5, elapsed


def test_long_term_split_over_lines_is_refused_after_parsing(tmp_path: Path) -> None:
    folded = "\n".join("        " + "y" * 100 for _ in range(5))
    path = write(tmp_path, f"name: p\ncategories:\n  abuse:\n    severity: low\n"
                           f"    terms:\n      - >-\n{folded}\n")
    with pytest.raises(RulePackError, match=r":6: term too long \(504 characters"):
        RulePack.load(path)


def test_file_too_large_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_PACK_BYTES + 1))
    with pytest.raises(RulePackError, match="rule pack too large") as info:
        RulePack.load(path)
    assert info.value.line is None


def test_invalid_utf8_names_line_and_offset(tmp_path: Path) -> None:
    data = b"name: p\ncategories:\n  abuse:\n    severity: low\n    terms: [\"\xff\xfe\"]\n"
    with pytest.raises(RulePackError) as info:
        RulePack.load(write(tmp_path, data))
    assert info.value.line == 5
    offset = data.index(b"\xff")
    assert info.value.message == f"not valid UTF-8 (byte 0xff at offset {offset})"


def test_default_pack_uses_the_taxonomy() -> None:
    from policy.taxonomy import category_problem
    pack = RulePack.load(default_pack_path())
    assert [c for c in pack.categories if category_problem(c)] == []
