"""policy.engine: matching transcripts against a pack and building alerts."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr.frames import ConfidenceClass, Transcript
from ingest.frames import SpeechSegment
from policy.engine import PolicyEngine
from policy.frames import Alert
from policy.matcher import PhraseMatcher
from policy.rules import RulePack

PACK = b"""\
name: engine-test
version: "7"
categories:
  abuse:
    severity: medium
    suggestion: review
    terms:
      - id: abuse.idiot
        term: "you idiot"
      - "you stupid idiot"
      - "stupid"
      - "shut up loser"
  violence:
    severity: high
    suggestion: block
    terms:
      - "kill"
      - "kill you"
      - "i'll kill you"
  self_harm:
    severity: critical
    suggestion: review
    terms:
      - "kill yourself"
  fraud:
    severity: high
    suggestion: block
    terms:
      - "send me your password"
      - "your password"
  spam:
    severity: low
    suggestion: pass
    terms:
      - "buy followers"
  custom.numbers:
    severity: low
    suggestion: review
    terms:
      - "24 7"
"""


def make_transcript(text: str, confidence_class: ConfidenceClass = "confident",
                    room: str = "room-1", speaker: str = "bob",
                    start_offset_s: float = 12.5) -> Transcript:
    pcm = bytes(3200)  # 0.1 s of silence: the engine never looks at audio
    segment = SpeechSegment(
        room_id=room, speaker_id=speaker,
        segment_id=SpeechSegment.make_id(room, speaker, start_offset_s, pcm), seq=3, pcm=pcm,
        start_offset_s=start_offset_s, end_offset_s=start_offset_s + 0.1,
        start_time=1_700_000_000.0, end_time=1_700_000_000.1, end_monotonic=100.0,
    )
    return Transcript(segment=segment, transcript_id=f"t-{segment.segment_id}", text=text,
                      language="en", words=(), confidence=0.9,
                      confidence_class=confidence_class, model_id="tiny.en@test",
                      asr_seconds=0.05)


@pytest.fixture(scope="module")
def pack() -> RulePack:
    return RulePack.from_bytes(PACK, "engine-test.yaml")


@pytest.fixture
def engine(pack: RulePack) -> PolicyEngine:
    return PolicyEngine(pack)


def hits(engine: PolicyEngine, text: str, **kw: object) -> list[tuple[str, str]]:
    return [(a.rule_id, a.match.text) for a in engine.evaluate(make_transcript(text, **kw))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("you idiot", [("abuse.idiot", "you idiot")]),
        ("YOU IDIOT", [("abuse.idiot", "YOU IDIOT")]),
        ("ｙｏｕ ｉｄｉｏｔ", [("abuse.idiot", "ｙｏｕ ｉｄｉｏｔ")]),
        ("you... idiot!", [("abuse.idiot", "you... idiot")]),
        ("Oh, you, idiot.", [("abuse.idiot", "you, idiot")]),
        ("You\u2019re such a... you IDIOT", [("abuse.idiot", "you IDIOT")]),
        ("i\u200bdiot? you i\u200bdiot!", [("abuse.idiot", "you i\u200bdiot")]),
        ("Shut up, LOSER.", [("abuse.shut_up_loser", "Shut up, LOSER")]),
        ("I'll KILL you", [("violence.ill_kill_you", "I'll KILL you")]),
        ("Ill kill you", [("violence.ill_kill_you", "Ill kill you")]),
        ("open 24/7", [("custom.numbers.24_7", "24/7")]),
    ],
)
def test_variants_are_caught(engine: PolicyEngine, text: str,
                             expected: list[tuple[str, str]]) -> None:
    assert hits(engine, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "that skill is amazing",  # "kill" inside a word
        "skills you showed",  # "kill you" across a word boundary inside "skills you"
        "the killer app",
        "overkill",
        "you idiots",  # the plural is a different word
        "your idiot brother",  # "you" != "your"
        "stupidity",
        "send me your passwords",
        "bystupid",
        "you idiot"[:-1],
        "",
        "   ",
    ],
)
def test_word_boundaries(engine: PolicyEngine, text: str) -> None:
    assert hits(engine, text) == []


def test_spans_map_back_to_original_text(engine: PolicyEngine) -> None:
    text = "Well... ＹＯＵ  idiot!! I\u2019ll kill you, send me your PASSWORD."
    alerts = engine.evaluate(make_transcript(text))
    assert [(a.rule_id, a.match.text) for a in alerts] == [
        ("abuse.idiot", "ＹＯＵ  idiot"),
        ("violence.ill_kill_you", "I\u2019ll kill you"),
        ("fraud.send_me_your_password", "send me your PASSWORD"),
    ]
    for a in alerts:
        assert text[a.match.start:a.match.end] == a.match.text


def test_alert_fields(engine: PolicyEngine, pack: RulePack) -> None:
    t = make_transcript("hey you idiot")
    [alert] = engine.evaluate(t)
    assert alert.transcript is t
    assert alert.category == "abuse"
    assert alert.severity == "medium"
    assert alert.suggestion == "review"
    assert alert.rule_id == "abuse.idiot"
    assert (alert.match.start, alert.match.end, alert.match.text) == (4, 13, "you idiot")
    assert alert.policy_hash == pack.sha256
    assert (alert.policy_name, alert.policy_version) == ("engine-test", "7")
    assert alert.alert_id == Alert.make_id(t.segment.segment_id, "abuse.idiot", 0)
    assert alert.room_id == "room-1" and alert.speaker_id == "bob"


def test_ids_are_deterministic(pack: RulePack) -> None:
    text = "you idiot, I'll kill you"
    a = PolicyEngine(pack).evaluate(make_transcript(text))
    b = PolicyEngine(pack).evaluate(make_transcript(text))
    assert [x.alert_id for x in a] == [x.alert_id for x in b]
    assert len({x.alert_id for x in a}) == len(a)
    other_segment = PolicyEngine(pack).evaluate(make_transcript(text, start_offset_s=99.0))
    assert {x.alert_id for x in a}.isdisjoint(x.alert_id for x in other_segment)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # same category, overlapping: the longest wins
        ("you stupid idiot", [("abuse.you_stupid_idiot", "you stupid idiot")]),
        ("I'll kill you", [("violence.ill_kill_you", "I'll kill you")]),
        ("kill you now", [("violence.kill_you", "kill you")]),
        ("send me your password", [("fraud.send_me_your_password", "send me your password")]),
        # different categories overlapping: both kept
        # (same start: ordered by category)
        ("go kill yourself", [("self_harm.kill_yourself", "kill yourself"),
                              ("violence.kill", "kill")]),
        # the same rule twice, apart: two alerts
        ("you idiot, yes you idiot", [("abuse.idiot", "you idiot"), ("abuse.idiot", "you idiot")]),
        # same category, not overlapping: both kept
        ("stupid! you idiot", [("abuse.stupid", "stupid"), ("abuse.idiot", "you idiot")]),
    ],
)
def test_overlaps(engine: PolicyEngine, text: str, expected: list[tuple[str, str]]) -> None:
    assert hits(engine, text) == expected


def test_same_rule_twice_gets_distinct_ids(engine: PolicyEngine) -> None:
    a, b = engine.evaluate(make_transcript("you idiot, yes you idiot"))
    assert a.alert_id != b.alert_id
    assert (a.match.start, b.match.start) == (0, 15)


@pytest.mark.parametrize(
    ("confidence_class", "text", "expected"),
    [
        ("confident", "I'll kill you", "block"),
        ("low", "I'll kill you", "review"),  # never auto-block on doubtful speech
        ("confident", "you idiot", "review"),
        ("low", "you idiot", "review"),
        ("confident", "buy followers", "pass"),
        ("low", "buy followers", "pass"),  # low confidence never raises the suggestion
    ],
)
def test_confidence_caps_suggestion(engine: PolicyEngine, confidence_class: ConfidenceClass,
                                    text: str, expected: str) -> None:
    [alert] = engine.evaluate(make_transcript(text, confidence_class=confidence_class))
    assert alert.suggestion == expected


def test_rejected_transcripts_yield_nothing(engine: PolicyEngine) -> None:
    assert engine.evaluate(make_transcript("I'll kill you", confidence_class="rejected")) == []
    assert engine.stats.skipped_rejected == 1


def test_stats(engine: PolicyEngine) -> None:
    engine.evaluate(make_transcript("you stupid idiot"))
    engine.evaluate(make_transcript("nothing here"))
    engine.evaluate(make_transcript("you idiot", confidence_class="rejected"))
    s = engine.stats
    assert (s.evaluated, s.skipped_rejected, s.alerts) == (3, 1, 1)
    assert s.matches == 2  # "you stupid idiot" and "stupid" overlap; the longer survives


def test_matcher_is_replaceable(pack: RulePack) -> None:
    calls: list[str] = []

    class Recording(PhraseMatcher):
        def find_all(self, text: str):  # type: ignore[no-untyped-def]
            calls.append(text)
            return super().find_all(text)

    matcher = Recording((r.normalized, i) for i, r in enumerate(pack.rules))
    engine = PolicyEngine(pack, matcher=matcher)
    assert [a.rule_id for a in engine.evaluate(make_transcript("YOU, idiot"))] == ["abuse.idiot"]
    assert calls == ["you idiot"]


def test_phrase_matcher_reports_overlapping_and_nested() -> None:
    m = PhraseMatcher([("a b", 0), ("b c", 1), ("a b c", 2), ("b", 3)])
    assert [tuple(x) for x in m.find_all("a b c b")] == [
        (0, 3, 0), (0, 5, 2), (2, 3, 3), (2, 5, 1), (6, 7, 3)]
    assert m.find_all("") == []
    with pytest.raises(ValueError):
        PhraseMatcher([("not  normalized", 0)])


def test_default_pack_engine_end_to_end() -> None:
    from policy.rules import default_pack_path

    engine = PolicyEngine(RulePack.load(default_pack_path()))
    flagged = {
        "Shut up, loser! Nobody asked you.": "abuse.shut_up_loser",
        "YOU IDIOT": "abuse.idiot",
        "I know where you live.": "violence.i_know_where_you_live",
        "Send me your password and I'll fix it.": "fraud.send_me_your_password",
        "This coin has guaranteed returns.": "fraud.guaranteed_returns",
        "Use my casino bonus code!": "gambling.casino_bonus_code",
        "I'm selling cocaine after the show.": "drugs.selling_cocaine",
        "Sometimes I want to die.": "self_harm.i_want_to_die",
        "Go back to your country.": "hate.go_back_to_your_country",
    }
    for text, rule_id in flagged.items():
        assert [a.rule_id for a in engine.evaluate(make_transcript(text))] == [rule_id], text
    benign = [
        "I killed it at the gym today.",
        "That skill is amazing.",
        "The casino scene in that film was great.",
        "Please never share your password with anyone.",
        "Returns are never guaranteed.",
        "I would kill for a coffee right now.",
        "This workout is killing me.",
        "My cat is such a little idiot sometimes.",
        "I bet you will love this song.",
    ]
    for text in benign:
        assert engine.evaluate(make_transcript(text)) == [], text


def test_engine_loads_pack_from_path(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(PACK)
    engine = PolicyEngine(RulePack.load(path))
    assert engine.pack.path == path
    assert [a.category for a in engine.evaluate(make_transcript("you idiot"))] == ["abuse"]


def test_alert_ids_survive_a_redecode_that_shifts_the_text() -> None:
    # A crash replay may decode the same speech with slightly different words before the match
    # (packing changes context); the alert must keep its id so consumers dedupe it.
    from policy.engine import PolicyEngine
    from policy.rules import RulePack, default_pack_path
    from tests.fakes_asr import make_segment

    engine = PolicyEngine(RulePack.load(default_pack_path()))
    seg = make_segment()

    def alert_ids(text: str) -> list[str]:
        from asr.frames import Transcript

        t = Transcript(segment=seg, transcript_id="t", text=text, language="en", words=(),
                       confidence=0.9, confidence_class="confident", model_id="m",
                       asr_seconds=0.1)
        return [a.alert_id for a in engine.evaluate(t)]

    first, replay = alert_ids("Shut up loser."), alert_ids("Oh shut up, loser.")
    assert first and first == replay
    twice = alert_ids("shut up loser, I said shut up loser")
    assert len(set(twice)) == 2 and twice[0] == first[0]


def test_the_classifier_flags_abuse_no_rule_names_and_only_suggests_review() -> None:
    from alerts.envelope import alert_record
    from alerts.schemas import validate
    from asr.frames import Transcript
    from policy.classifier import ClassifierOutput
    from policy.engine import PolicyEngine
    from policy.rules import RulePack, default_pack_path
    from tests.fakes_asr import make_segment

    class Fixed:
        def __init__(self, p: float) -> None:
            self.p = p

        def score(self, text: str) -> ClassifierOutput:
            return ClassifierOutput("abusive" if self.p >= 0.5 else "ok", self.p, "fake@1/en",
                                    "en")

    def run(p: float, text: str, cls: str = "confident") -> list:
        engine = PolicyEngine(RulePack.load(default_pack_path()), classifier=Fixed(p),
                              classifier_threshold=0.9, windows=None)
        t = Transcript(segment=make_segment(), transcript_id="f" * 32, text=text,
                       language="en", words=(), confidence=0.9, confidence_class=cls,
                       model_id="m@1", asr_seconds=0.1)
        return engine.evaluate(t)

    [alert] = run(0.95, "you absolute waste of space")
    assert (alert.rule_id, alert.suggestion, alert.match.kind) == (
        "classifier.abuse", "review", "classifier")
    assert alert.classifier_probability == 0.95 and alert.classifier_model_id == "fake@1/en"
    record = alert_record(alert, source="/t")
    from alerts.envelope import decode_record

    _, data = decode_record(record.headers, record.value)
    validate("alert", data)
    assert data["classifier"] == {"model_id": "fake@1/en", "probability": 0.95}
    assert run(0.5, "you absolute waste of space") == []  # under the threshold
    assert run(0.99, "x", cls="rejected") == []  # rejected text is never judged
    # A rule already flagged the category: no second alert for the same speech.
    assert [a.rule_id for a in run(0.99, "shut up loser")] == ["abuse.shut_up_loser"]


def test_the_shipped_classifier_leaves_the_sample_rooms_benign_lines_alone() -> None:
    from policy.classifier import load_classifier
    from roomwarden.sample_room import load_sample_room

    clf = load_classifier("builtin")
    assert clf is not None
    for u in load_sample_room().utterances:
        if u.category is None:
            assert clf.score(u.text).probability < 0.9, u.text
