"""Evasions the matcher must catch (each with its span in the ORIGINAL text and its match kind),
phrases split across segments, and near-miss benign sentences it must not flag.

What counts as benign for the default pack: ordinary talk that merely mentions a topic (news
about gambling, a film's casino scene, computer viruses, "big trouble"), numbers and model names
with digits, and words that contain a term's letters. The default pack lists phrases that *do*
the harmful thing (promote, sell, threaten, insult someone), never bare topic words.
"""

from __future__ import annotations

import pytest

from asr.frames import Transcript
from policy.engine import PolicyEngine
from policy.normalize import normalize, normalize_text
from policy.rules import RulePack, default_pack_path
from policy.window import SpeakerWindows
from tests.unit.test_policy_engine import make_transcript

PACK = """\
name: evasion-test
categories:
  abuse:
    severity: medium
    terms:
      - "fuck"
      - "you idiot"
  violence:
    severity: high
    suggestion: block
    terms:
      - "i will kill you"
      - "kill you"
  gambling:
    severity: medium
    terms:
      - id: gambling.zh.gamble
        term: "赌博"
  drugs:
    severity: high
    terms:
      - id: drugs.zh.sell_weed
        term: "卖大麻"
""".encode()


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(RulePack.from_bytes(PACK, "evasion-test.yaml"), windows=None)


@pytest.fixture(scope="module")
def default_engine() -> PolicyEngine:
    return PolicyEngine(RulePack.load(default_pack_path()), windows=None)


# (case, transcript text, rule id, matched original text, match kind)
EVASIONS = [
    ("plain", "I will kill you tonight", "violence.i_will_kill_you", "I will kill you", "exact"),
    ("punctuation", "I... will, KILL you!", "violence.i_will_kill_you", "I... will, KILL you",
     "normalized"),
    ("spaced letters", "well f u c k that", "abuse.fuck", "f u c k", "normalized"),
    ("dotted letters", "f.u.c.k. off", "abuse.fuck", "f.u.c.k", "normalized"),
    ("full-width", "ｙｏｕ ＩＤＩＯＴ", "abuse.you_idiot", "ｙｏｕ ＩＤＩＯＴ", "normalized"),
    ("zero-width", "you i\u200bdiot", "abuse.you_idiot", "you i\u200bdiot", "normalized"),
    ("leet digits", "i will k1ll y0u", "violence.i_will_kill_you", "i will k1ll y0u", "leet"),
    ("leet ones for l", "ki11 you", "violence.kill_you", "ki11 you", "leet"),
    ("leet symbols", "you 1d10t", "abuse.you_idiot", "you 1d10t", "leet"),
    ("homoglyph", "you \u0456di\u043et", "abuse.you_idiot", "you \u0456di\u043et", "leet"),
    ("repeated letters", "fuuuuuck this", "abuse.fuck", "fuuuuuck", "fuzzy"),
    ("spaced chinese", "我们去赌 博吧", "gambling.zh.gamble", "赌 博", "normalized"),
    ("dashed chinese", "赌-博", "gambling.zh.gamble", "赌-博", "normalized"),
    ("traditional", "一起去賭博", "gambling.zh.gamble", "賭博", "normalized"),
    ("homophone", "我们去堵博", "gambling.zh.gamble", "堵博", "pinyin"),
    ("asr homophone", "他在卖大马", "drugs.zh.sell_weed", "卖大马", "pinyin"),
    ("typed pinyin", "wanna du bo tonight", "gambling.zh.gamble", "du bo", "pinyin"),
    ("joined pinyin", "dubo later?", "gambling.zh.gamble", "dubo", "pinyin"),
    ("mixed pinyin", "我们去du博吧", "gambling.zh.gamble", "du博", "pinyin"),
]


@pytest.mark.parametrize(("case", "text", "rule_id", "matched", "kind"), EVASIONS,
                         ids=[e[0] for e in EVASIONS])
def test_evasion_is_caught_with_original_span(engine: PolicyEngine, case: str, text: str,
                                              rule_id: str, matched: str, kind: str) -> None:
    alerts = engine.evaluate(make_transcript(text))
    hits = [a for a in alerts if a.rule_id == rule_id]
    assert len(hits) == 1, f"{case}: {[(a.rule_id, a.match) for a in alerts]}"
    m = hits[0].match
    assert text[m.start:m.end] == m.text == matched
    assert m.kind == kind


def test_tones_mode_only_matches_true_homophones() -> None:
    pack = RulePack.from_bytes(PACK, "evasion-test.yaml")
    strict = PolicyEngine(pack, pinyin="tones", windows=None)
    assert [a.match.text for a in strict.evaluate(make_transcript("去堵博"))] == ["堵博"]  # dǔ bó
    assert strict.evaluate(make_transcript("他在卖大马")) == []  # mǎ, not má
    off = PolicyEngine(pack, pinyin="off", windows=None)
    assert off.evaluate(make_transcript("他在卖大马")) == []


def seg(text: str, start: float, speaker: str = "bob") -> Transcript:
    return make_transcript(text, speaker=speaker, start_offset_s=start)


def test_phrase_split_across_two_segments_alerts_once_on_the_later_one() -> None:
    engine = PolicyEngine(RulePack.from_bytes(PACK, "evasion-test.yaml"))
    first = seg("okay listen I will", 10.0)
    second = seg("kill you if you come", 10.5)
    third = seg("back here again", 11.0)
    assert engine.evaluate(first) == []
    alerts = engine.evaluate(second)
    assert [(a.rule_id, a.match.kind, a.match.text) for a in alerts] == [
        ("violence.i_will_kill_you", "cross_segment", "kill you")]
    assert alerts[0].transcript_ids == (first.transcript_id, second.transcript_id)
    assert alerts[0].transcript is second
    # a replay of the later segment yields the same alert id (consumers dedupe it)
    assert [a.alert_id for a in engine.evaluate(second)] == [alerts[0].alert_id]
    assert engine.evaluate(third) == []  # the next segment does not re-alert it


def test_split_chinese_phrase_and_window_limits() -> None:
    engine = PolicyEngine(RulePack.from_bytes(PACK, "evasion-test.yaml"),
                          windows=SpeakerWindows(max_segments=2, max_gap_s=2.0, max_speakers=2))
    engine.evaluate(seg("我们去赌", 1.0))
    assert [a.match.kind for a in engine.evaluate(seg("博吧", 1.5))] == ["cross_segment"]
    # another speaker's words never join
    engine.evaluate(seg("我们去赌", 5.0, speaker="ann"))
    assert engine.evaluate(seg("博吧", 5.5, speaker="carl")) == []
    # a long silence starts a new sentence
    engine.evaluate(seg("我们去赌", 20.0))
    assert engine.evaluate(seg("博吧", 30.0)) == []
    assert engine.windows is not None and len(engine.windows) == 2  # LRU bound


# Sentences that must not raise any alert with the default pack.
BENIGN = [
    "the casino scene in that film was great",
    "I killed it at the gym today",
    "she is going to kill it on stage",
    "that was a skill issue honestly",
    "we had a class assessment at 4th period",
    "the meeting is at 10 am on the 1st",
    "call the 24/7 support line, it costs $5",
    "my mp3 player and covid19 news",
    "plan b is fine, or plan a",
    "the u s a team won",
    "I will kill the lights before we go",
    "you're a legend, nobody does it better",
    "send me the meeting notes",
    "I killed my old password and made a new one",
    "I'm going to the store",
    "sooooo good to see you all",
    "这是个大麻烦",
    "我大妈在市场卖菜",
    "电脑中了病毒",
    "赌博是违法的新闻报道",
    "不要把银行卡密码告诉别人",
    "我想死你了",
    "他在讲大麻的医学研究",
    "博彩业的税收政策",
    "我们去打篮球吧",
    "今天的天气真好",
]


@pytest.mark.parametrize("text", BENIGN)
def test_near_miss_benign_sentence_is_not_flagged(default_engine: PolicyEngine,
                                                  text: str) -> None:
    alerts = default_engine.evaluate(make_transcript(text))
    assert alerts == [], [(a.rule_id, a.match) for a in alerts]


@pytest.mark.parametrize(("text", "rule_id"), [
    ("我要杀了你", "violence.zh.kill_you"),
    ("加入我们的網賭平台", "gambling.zh.online_gambling_platform"),
    ("有人在卖冰毒", "drugs.zh.sell_meth"),
    ("快把验 证 码发给我", None),
    ("把验证码发给我", "fraud.zh.send_verification_code"),
])
def test_default_pack_chinese_terms(default_engine: PolicyEngine, text: str,
                                   rule_id: str | None) -> None:
    ids = [a.rule_id for a in default_engine.evaluate(make_transcript(text))]
    assert ids == ([rule_id] if rule_id else ["fraud.zh.send_verification_code"])


@pytest.mark.parametrize("text", [
    *[e[1] for e in EVASIONS], *BENIGN, "don't stop", "a' b c", "'a b c", "x'a b c d",
    "it's 5 o'clock", "b2b 4th 100k a@b $$ @@", "İstanbul ﬁne", "ＡＢＣ ａ ｂ ｃ",
])
def test_fast_text_path_equals_full_normalization(text: str) -> None:
    assert normalize_text(text) == normalize(text).text


@pytest.mark.parametrize(("text", "term", "caught"), [
    ("我们没有时间", "美幼", False),        # méi yǒu vs měi yòu: everyday words, not the term
    ("大家一起你好", "骑你", False),        # yī qǐ nǐ: toneless "qi ni" is everywhere
    ("今天学习", "舔穴", False),            # tiān xué vs tiǎn xué
    ("他在卖读品", "毒品", True),           # dú pǐn: same tones, an ASR homophone
    ("我们去du博吧", "赌博", True),         # typed syllables carry no tone
    ("我们去堵博", "赌博", True),           # dǔ bó
    ("他在卖大马", "卖大麻", True),         # three characters: toneless as configured
])
def test_two_character_terms_sound_alike_only_with_their_tones(text: str, term: str,
                                                                caught: bool) -> None:
    """Two toneless syllables are too common a sound: with a large lexicon they flagged half
    of everyday Chinese (bench corpus: 3,940 pinyin hits in 5,513 Chinese sentences)."""
    from policy.rules import Rule
    from policy.term_index import TermIndex

    index = TermIndex([Rule(id="t", category="abuse", term=term, normalized=term, line=1)])
    assert bool(index.find(text)) is caught


def test_toneless_syllables_are_the_toned_ones_without_digits() -> None:
    """What :func:`policy.pinyin.untoned` relies on, for every CJK character and kana."""
    from policy.pinyin import pinyin_units, untoned

    for text in ("".join(map(chr, range(0x4E00, 0xA000))), "ひらがなカタカナ漢字", "我们去du博吧"):
        assert untoned(text, pinyin_units(text, True)) == pinyin_units(text, False)
