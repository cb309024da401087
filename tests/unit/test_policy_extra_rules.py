"""policy.extra_rules through the real engine: regex terms and allow-lists."""

from __future__ import annotations

from asr.frames import Transcript
from ingest.frames import SpeechSegment
from policy.engine import PolicyEngine
from policy.rules import RulePack

PACK = b"""\
name: extra-test
version: "1"
categories:
  violence:
    severity: high
    suggestion: block
    terms: ["kill it", "i will kill you"]
    allow: ["kill it at the gym"]
  fraud:
    severity: high
    terms: ["send me your password"]
    regex:
      - id: fraud.re.wire
        pattern: "wire (?:me )?\\\\$?\\\\d+ (?:dollars|bucks)"
  custom.crypto:
    severity: low
    regex: ["buy \\\\d+ coins"]
"""


def transcript(text: str, speaker: str = "bob", at: float = 1.0) -> Transcript:
    pcm = bytes(3200)
    segment = SpeechSegment(
        room_id="r", speaker_id=speaker, segment_id=SpeechSegment.make_id("r", speaker, at, pcm),
        seq=1, pcm=pcm, start_offset_s=at, end_offset_s=at + 0.1, start_time=1.7e9,
        end_time=1.7e9 + 0.1, end_monotonic=100.0)
    return Transcript(segment=segment, transcript_id=f"t-{segment.segment_id}", text=text,
                      language="en", words=(), confidence=0.9, confidence_class="confident",
                      model_id="m", asr_seconds=0.01)


def engine() -> PolicyEngine:
    return PolicyEngine(RulePack.from_bytes(PACK, "extra.yaml"), windows=None)


def test_regex_rule_alerts_with_its_span() -> None:
    text = "OK so Wire me $500 bucks tonight"
    [alert] = engine().evaluate(transcript(text))
    assert (alert.rule_id, alert.category, alert.severity) == ("fraud.re.wire", "fraud", "high")
    assert alert.match.text == "Wire me $500 bucks"
    assert text[alert.match.start:alert.match.end] == alert.match.text
    assert alert.match.kind == "regex"


def test_regex_only_custom_category() -> None:
    [alert] = engine().evaluate(transcript("buy 100 coins now"))
    assert alert.category == "custom.crypto" and alert.rule_id.startswith("custom.crypto.re_")


def test_allow_phrase_suppresses_an_overlapping_match() -> None:
    e = engine()
    assert e.evaluate(transcript("I'm going to KILL IT at the gym today")) == []
    alerts = e.evaluate(transcript("kill it, then I will kill you", at=5.0))
    assert [a.rule_id for a in alerts] == ["violence.kill_it", "violence.i_will_kill_you"]


def test_allow_phrase_only_suppresses_what_it_overlaps() -> None:
    alerts = engine().evaluate(transcript("kill it at the gym, and i will kill you"))
    assert [a.rule_id for a in alerts] == ["violence.i_will_kill_you"]


def test_allow_phrase_only_suppresses_its_own_category() -> None:
    pack = PACK.replace(b'allow: ["kill it at the gym"]', b'allow: ["send me your password"]')
    e = PolicyEngine(RulePack.from_bytes(pack, "x.yaml"), windows=None)
    assert [a.category for a in e.evaluate(transcript("send me your password"))] == ["fraud"]


def test_packs_without_extras_are_unchanged() -> None:
    e = PolicyEngine(RulePack.from_bytes(PACK.split(b"    allow:")[0] + b"\n", "y.yaml"),
                     windows=None)
    assert [a.rule_id for a in e.evaluate(transcript("kill it"))] == ["violence.kill_it"]
