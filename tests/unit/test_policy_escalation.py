"""policy.escalation: decaying risk, the ladder, cooldowns, review routing, bounds."""

from __future__ import annotations

import dataclasses
import math

import pytest

from policy.escalation import Escalation, EscalationPolicy, Escalator, decayed
from tests.escalation_script import EXPECTED, T0, make_alert, scripted_sequence, summary


def test_scripted_sequence_gives_exactly_the_expected_escalations_in_order() -> None:
    escalator = Escalator()
    got = escalator.observe(scripted_sequence())
    assert summary(got) == EXPECTED
    # The rant of 40 alerts produced 4 escalations, and nothing after the removal call.
    assert sum(e.speaker_id == "dave" for e in got) == 5
    assert escalator.stats.observed == 47
    assert escalator.stats.review_only == 2
    assert escalator.stats.escalations["recommend_remove"] == 1


def test_rant_risk_numbers_match_a_hand_computation() -> None:
    got = {(e.speaker_id, e.action): e for e in Escalator().observe(scripted_sequence())}
    step = 0.5 ** (1.5 / 300)  # decay between two rant alerts 1.5 s apart

    def rant_risk(k: int) -> float:  # risk after the k-th (1-based) alert: 2 * sum step^i
        return 2 * sum(step ** i for i in range(k))

    assert rant_risk(3) < 6 <= rant_risk(4)
    assert rant_risk(6) < 12 <= rant_risk(7)
    assert rant_risk(12) < 24 <= rant_risk(13)
    assert got[("dave", "operator_alert")].risk_speaker == pytest.approx(rant_risk(4))
    assert got[("dave", "recommend_mute")].risk_speaker == pytest.approx(rant_risk(7))
    assert got[("dave", "recommend_remove")].risk_speaker == pytest.approx(rant_risk(13))
    assert rant_risk(40) == pytest.approx(74.832, abs=1e-3)
    # The warning after the quiet period (the last escalation of dave's) carries the rant's
    # remainder: 74.832 halved 7.47 times (2241.5 s / 300 s) = 0.422, plus the new 2.
    last = [e for e in Escalator().observe(scripted_sequence()) if e.speaker_id == "dave"][-1]
    assert last.risk_speaker == pytest.approx(rant_risk(40) * 0.5 ** ((2400 - 158.5) / 300) + 2)
    assert last.risk_speaker == pytest.approx(2.422, abs=1e-3)


def test_decay_uses_half_life_on_speech_time() -> None:
    policy = EscalationPolicy(speaker_cooldown_s=0.0)
    escalator = Escalator(policy)
    a = escalator.observe([make_alert(0, "x", "medium")])       # 2
    b = escalator.observe([make_alert(300, "x", "high")])       # 2 * 1/2 + 4 = 5
    c = escalator.observe([make_alert(900, "x", "low")])        # 5 * 1/4 + 1 = 2.25
    assert [e.risk_speaker for e in a + b + c] == pytest.approx([2.0, 5.0, 2.25])
    assert [e.action for e in a + b + c] == ["host_warning", "operator_alert", "host_warning"]
    assert decayed(8.0, 600, 300) == pytest.approx(2.0)
    assert decayed(8.0, -5, 300) == 8.0


def test_out_of_order_alert_adds_weight_without_decaying_backwards() -> None:
    escalator = Escalator(EscalationPolicy(speaker_cooldown_s=0.0))
    escalator.observe([make_alert(300, "x", "medium")])
    late = escalator.observe([make_alert(0, "x", "medium")])
    assert late[0].risk_speaker == pytest.approx(4.0)


def test_cooldown_one_warning_per_window_then_a_reminder() -> None:
    escalator = Escalator()
    out = escalator.observe([make_alert(0, "x", "low"), make_alert(100, "x", "low"),
                             make_alert(299, "x", "low"), make_alert(300, "x", "low")])
    assert summary(out) == [(0.0, "room-a", "x", "host_warning"),
                            (300.0, "room-a", "x", "host_warning")]


def test_higher_rung_cools_down_lower_rungs_too() -> None:
    escalator = Escalator()
    first = escalator.observe([make_alert(0, "x", "critical")])
    assert [e.action for e in first] == ["operator_alert"]  # supersedes the host warning
    assert escalator.observe([make_alert(5, "x", "low")]) == []  # warning is cooling too


def test_low_confidence_never_acts_and_adds_no_risk() -> None:
    escalator = Escalator()
    out = escalator.observe([make_alert(i * 61.0, "x", "critical", confidence="low")
                             for i in range(10)])
    assert {e.action for e in out} == {"review"}
    assert len(out) == 10  # 61 s apart: each past the 60 s review cooldown
    assert all(e.risk_speaker == 0.0 for e in out)
    # The first confident violation afterwards is a host warning on its own weight only.
    after = escalator.observe([make_alert(700, "x", "medium")])
    assert [(e.action, e.risk_speaker) for e in after] == [("host_warning", 2.0)]


def test_fractional_uncertain_weight_counts_but_still_only_reviews() -> None:
    escalator = Escalator(EscalationPolicy(uncertain_weight=0.5, review_cooldown_s=0.0))
    out = escalator.observe([make_alert(0, "x", "critical", confidence="low"),
                             make_alert(0.0, "x", "critical", confidence="low", n=1)])
    assert [e.action for e in out] == ["review", "review"]
    assert out[-1].risk_speaker == pytest.approx(8.0)


def test_classifier_alert_goes_to_review_and_pass_is_ignored() -> None:
    escalator = Escalator()
    out = escalator.observe([make_alert(0, "x", "high", kind="classifier"),
                             make_alert(1, "y", "low", suggestion="pass")])
    assert [(e.speaker_id, e.action) for e in out] == [("x", "review")]
    assert "classifier guess" in out[0].reason
    assert escalator.stats.ignored_pass == 1


def test_pack_review_can_be_made_review_only() -> None:
    out = Escalator(EscalationPolicy(pack_review_actionable=False)).observe(
        [make_alert(0, "x", "medium"), make_alert(1, "x", "high")])
    assert [e.action for e in out] == ["review", "operator_alert"]  # high is ``block``


def test_redelivered_alert_is_ignored() -> None:
    escalator = Escalator(EscalationPolicy(speaker_cooldown_s=0.0))
    alert = make_alert(0, "x", "medium")
    assert len(escalator.observe([alert])) == 1
    assert escalator.observe([alert]) == []
    assert escalator.stats.duplicates == 1


def test_same_input_gives_same_escalations_and_ids() -> None:
    first = Escalator().observe(scripted_sequence())
    second = Escalator().observe(scripted_sequence())
    assert first == second
    alice = first[0]
    assert alice.escalation_id == Escalation.make_id(
        "room-a", "alice", "host_warning", alice.alert_ids[-1])
    assert len({e.escalation_id for e in first}) == len(first)
    assert dataclasses.is_dataclass(alice) and alice.created_at == T0


def test_evidence_is_bounded_and_ends_with_the_trigger() -> None:
    alerts = [make_alert(100 + 1.5 * i, "dave") for i in range(40)]
    out = Escalator(EscalationPolicy(evidence_alerts=5)).observe(alerts)
    remove = next(e for e in out if e.action == "recommend_remove")
    assert remove.alert_ids == tuple(a.alert_id for a in alerts[8:13])


def test_memory_is_bounded_by_lru_and_ttl() -> None:
    escalator = Escalator(EscalationPolicy(max_speakers=3, max_rooms=2))
    escalator.observe([make_alert(i, f"s{i}", room=f"r{i % 4}") for i in range(10)])
    assert escalator.tracked == (3, 2)
    assert escalator.stats.evicted_speakers == 7
    # An hour-plus of silence drops everything idle.
    escalator.observe([make_alert(10 + 3601, "late", room="r9")])
    assert escalator.tracked == (1, 1)


def test_room_close_on_room_risk() -> None:
    policy = EscalationPolicy(close_room_at=20.0, close_room_speakers=10)
    out = Escalator(policy).observe([make_alert(0, f"s{i}", "high", n=i) for i in range(5)])
    assert summary(out)[-2:] == [(0.0, "room-a", "s4", "operator_alert"),
                                 (0.0, "room-a", "", "recommend_close_room")]
    assert "room risk 20.0 >= 20" in out[-1].reason


@pytest.mark.parametrize(("change", "message"), [
    ({"half_life_s": 0}, "half_life_s must be > 0"),
    ({"weight_high": -1}, "weight_high must not be negative"),
    ({"mute_at": math.nan}, "mute_at must be a finite number"),
    ({"uncertain_weight": 1.0}, "uncertain_weight must be in [0, 1)"),
    ({"mute_at": 5.0}, "thresholds must climb"),
    ({"state_ttl_s": 100.0}, "state_ttl_s (100.0) must be at least the longest"),
    ({"operator_severities": frozenset({"hgh"})}, "unknown severity ['hgh']"),
    ({"max_speakers": 0}, "max_speakers must be > 0"),
])
def test_bad_policy_values_are_refused_with_a_clear_message(
        change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        EscalationPolicy(**change)  # type: ignore[arg-type]
    assert message in str(info.value)
