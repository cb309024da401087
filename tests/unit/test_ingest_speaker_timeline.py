"""Crediting segments of a mixed stream from a talking timeline."""

from __future__ import annotations

from ingest.frames import SpeechSegment
from ingest.speaker_timeline import MIX_SPEAKER, TalkingTimeline, attribute


def _segment(start: float, end: float) -> SpeechSegment:
    pcm = b"\x01\x00" * round((end - start) * 16_000)
    return SpeechSegment(room_id="7", speaker_id=MIX_SPEAKER,
                         segment_id=SpeechSegment.make_id("7", MIX_SPEAKER, start, pcm), seq=0,
                         pcm=pcm, start_offset_s=start, end_offset_s=end, start_time=1000 + start,
                         end_time=1000 + end, end_monotonic=0.0, stream_id="janus:1:2")


def test_lag_moves_announcements_back() -> None:
    tl = TalkingTimeline(lag_s=0.5)
    tl.started("a", 10.5)
    tl.stopped("a", 12.5)
    assert tl.shares(10.0, 12.0) == {"a": 2.0}


def test_open_interval_runs_to_the_segment_end() -> None:
    tl = TalkingTimeline(lag_s=0.0)
    tl.started("a", 5.0)
    assert tl.talking() == ["a"]
    assert tl.shares(4.0, 8.0) == {"a": 3.0}


def test_most_talking_wins_even_under_half() -> None:
    tl = TalkingTimeline(lag_s=0.0)
    tl.started("a", 1.0)
    tl.stopped("a", 2.0)
    tl.started("a", 2.5)
    tl.stopped("a", 3.0)
    tl.started("b", 3.0)
    tl.stopped("b", 3.5)
    assert tl.speaker_for(0.0, 4.0) == "a"  # 1.5 s of 4: a third, and more than b
    assert tl.speaker_for(0.0, 10.0) is None  # 1.5 s of 10 is too little to credit anyone


def test_a_tie_is_nobodys() -> None:
    tl = TalkingTimeline(lag_s=0.0)
    for who in ("a", "b"):
        tl.started(who, 0.0)
        tl.stopped(who, 1.0)
    assert tl.speaker_for(0.0, 1.0) is None


def test_attribute_rewrites_speaker_name_and_id() -> None:
    tl = TalkingTimeline(lag_s=0.0)
    tl.started("42", 1000.2)
    tl.stopped("42", 1001.8)
    seg = attribute(_segment(0.0, 2.0), tl, {"42": "Alice"})
    assert (seg.speaker_id, seg.speaker_name) == ("42", "Alice")
    assert seg.segment_id == SpeechSegment.make_id("7", "42", 0.0, seg.pcm)
    nobody = attribute(_segment(5.0, 6.0), tl, {"42": "Alice"})
    assert (nobody.speaker_id, nobody.speaker_name) == (MIX_SPEAKER, "")
    assert nobody.segment_id == _segment(5.0, 6.0).segment_id


def test_old_intervals_are_forgotten() -> None:
    tl = TalkingTimeline(lag_s=0.0, keep_s=10.0)
    tl.started("a", 0.0)
    tl.stopped("a", 1.0)
    tl.started("b", 20.0)
    tl.stopped("b", 21.0)
    assert tl.shares(0.0, 30.0) == {"b": 1.0}
