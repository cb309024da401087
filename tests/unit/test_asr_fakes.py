"""The FakeRecognizer other stages' tests use behaves like the real seam."""

from __future__ import annotations

import pytest

from asr.recognizer import SpeechRecognizer, transcript_id
from tests.fakes_asr import FakeRecognizer, make_segment


async def test_fake_recognizer_scripts_by_id_seq_or_function() -> None:
    a, b = make_segment(seq=0), make_segment(seq=1, start_offset_s=5.0)

    by_key = FakeRecognizer({a.segment_id: "by id", 1: "by seq"})
    assert (await by_key.transcribe(a)).text == "by id"
    assert (await by_key.transcribe(b)).text == "by seq"
    by_fn = FakeRecognizer(lambda s: f"seq {s.seq}")
    assert (await by_fn.transcribe(b)).text == "seq 1"


async def test_fake_transcripts_look_real() -> None:
    fake = FakeRecognizer(["one two three four"])
    assert isinstance(fake, SpeechRecognizer)
    seg = make_segment(duration_s=2.0, start_offset_s=10.0, room_id="r1", speaker_id="s1")

    t = await fake.transcribe(seg)

    assert t.transcript_id == transcript_id(seg.segment_id, "fake@000000000000")
    assert (t.room_id, t.speaker_id) == ("r1", "s1")
    assert [w.text for w in t.words] == ["one", "two", "three", "four"]
    assert t.words[0].start_offset_s == 10.0 and t.words[-1].end_offset_s == pytest.approx(12.0)
    assert t.confidence == 0.95
