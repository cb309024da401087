"""transcribe_stream and the FakeRecognizer other stages' tests use."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import pytest

from asr.frames import Transcript
from asr.recognizer import SpeechRecognizer, transcript_id
from asr.stage import transcribe_stream
from ingest.frames import SpeechSegment
from tests.fakes_asr import FakeRecognizer, make_segment


async def aiter_of(items: Iterable[SpeechSegment]) -> AsyncIterator[SpeechSegment]:
    for item in items:
        yield item


async def collect(stream: AsyncIterator[Transcript]) -> list[Transcript]:
    return [t async for t in stream]


async def test_stream_yields_one_transcript_per_segment_in_order() -> None:
    segments = [make_segment(start_offset_s=float(i), seq=i) for i in range(4)]
    fake = FakeRecognizer(["hello there", "", ("maybe", 0.3), "bye now"], delay_s=0.001)

    out = await collect(transcribe_stream(aiter_of(segments), fake))

    assert [t.segment for t in out] == segments
    assert [t.text for t in out] == ["hello there", "", "maybe", "bye now"]
    assert [t.confidence_class for t in out] == ["confident", "rejected", "low", "confident"]
    assert fake.calls == segments


async def test_recognizer_errors_end_the_stream() -> None:
    class Broken:
        async def transcribe(self, segment: SpeechSegment) -> Transcript:
            raise ValueError("bad segment")

    with pytest.raises(ValueError, match="bad segment"):
        await collect(transcribe_stream(aiter_of([make_segment()]), Broken()))


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
