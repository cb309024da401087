"""Explanations: every verdict carries what a statement of reasons needs -- category, severity,
suggestion, rule id, matched span, score, the classifier's opinion, the policy hash and the
transcript ids it rests on -- on the Alert and in the published record."""

from __future__ import annotations

import dataclasses

import pytest

from alerts.envelope import alert_data
from alerts.schemas import validate
from asr.frames import Word
from policy.classifier import load_classifier
from policy.engine import PolicyEngine
from policy.explain import span_probability
from policy.rules import RulePack, default_pack_path
from tests.conftest import build_segment, build_transcript


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine(RulePack.load(default_pack_path()),
                        classifier=load_classifier("builtin"))


def with_probabilities(text: str, probabilities: list[float]):
    t = build_transcript(text=text)
    words = tuple(dataclasses.replace(w, probability=p)
                  for w, p in zip(t.words, probabilities, strict=True))
    return dataclasses.replace(t, words=words)


def test_span_probability_is_the_mean_of_the_matched_words() -> None:
    t = with_probabilities("you are a total idiot okay", [0.9, 0.9, 0.9, 0.5, 0.3, 0.9])
    start = t.text.index("total idiot")
    assert span_probability(t, start, start + len("total idiot")) == pytest.approx(0.4)
    assert span_probability(t, t.text.index("idiot"), t.text.index("idiot") + 2) == 0.3


def test_span_probability_falls_back_to_the_transcript_confidence() -> None:
    t = dataclasses.replace(build_transcript(text="you idiot"), words=(), confidence=0.77)
    assert span_probability(t, 4, 9) == 0.77
    chinese = dataclasses.replace(
        build_transcript(text="你这个傻逼"), words=(Word("你这个", 0, 0.5, 0.9),
                                                  Word("傻逼", 0.5, 0.9, 0.6)))
    assert span_probability(chinese, 3, 5) == 0.6


def test_every_rule_alert_is_a_statement_of_reasons(engine: PolicyEngine) -> None:
    t = with_probabilities("honestly you are worthless okay", [0.9, 0.9, 0.8, 0.4, 0.9])
    [alert] = [a for a in engine.evaluate(t) if a.match.kind != "classifier"]
    assert alert.category == "abuse" and alert.severity and alert.suggestion
    assert alert.rule_id and alert.match.text == "you are worthless"
    assert alert.match.kind == "exact"
    assert alert.score == pytest.approx((0.9 + 0.8 + 0.4) / 3)
    assert alert.classifier_model_id.endswith("/en")
    assert alert.classifier_probability is not None and 0 <= alert.classifier_probability <= 1
    assert alert.policy_hash == engine.pack.sha256 and alert.policy_version
    assert alert.evidence_ids == (t.transcript_id,)
    data = alert_data(alert, detected_at=0.0)
    validate("alert", data)
    assert data["score"] == pytest.approx(0.7, abs=1e-4)
    assert data["classifier"]["model_id"] == alert.classifier_model_id
    assert data["policy"]["sha256"] == engine.pack.sha256


def test_a_split_phrase_names_every_transcript_it_rests_on() -> None:
    engine = PolicyEngine(RulePack.load(default_pack_path()))
    first = build_transcript(build_segment(offset=10.0), text="go kill")
    second = build_transcript(build_segment(offset=11.5), text="yourself now")
    assert engine.evaluate(first) == []
    [alert] = engine.evaluate(second)
    assert alert.match.kind == "cross_segment"
    assert alert.evidence_ids == (first.transcript_id, second.transcript_id)
    assert alert.score is not None and alert.classifier_probability is None  # no classifier
    validate("alert", alert_data(alert, detected_at=0.0))


def test_a_classifier_alert_scores_with_its_probability(engine: PolicyEngine) -> None:
    t = build_transcript(text="shut up you fat retard")
    alerts = [a for a in engine.evaluate(t) if a.match.kind == "classifier"]
    if not alerts:
        pytest.skip("the pack's own rules flagged abuse here; nothing left for the classifier")
    [alert] = alerts
    assert alert.suggestion == "review"
    assert alert.score == alert.classifier_probability and alert.score >= 0.9
    validate("alert", alert_data(alert, detected_at=0.0))
