"""Transcript records read back for ``worker policy``: a round trip gives policy the same
verdict (same alert ids), and every kind of bad record is refused with its reason."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from alerts.envelope import KafkaRecord, alert_data, alert_record, transcript_record
from alerts.transcript_decode import (
    SPEECH_ENDED_AT_HEADER,
    BadTranscript,
    decode_transcript,
    with_speech_ended_at,
)
from asr.frames import Transcript
from policy.engine import PolicyEngine
from policy.rules import RulePack, default_pack_path

SOURCE = "/roomwarden/test"


def record_of(transcript: Transcript) -> KafkaRecord:
    return transcript_record(transcript, source=SOURCE, produced_at=1_763_755_300.0)


def with_data(record: KafkaRecord, change: Callable[[dict[str, Any]], None]) -> KafkaRecord:
    data = json.loads(record.value)
    change(data)
    return dataclasses.replace(record, value=json.dumps(data).encode())  # NaN stays NaN


def with_header(record: KafkaRecord, name: str, value: bytes | None) -> KafkaRecord:
    headers = [(k, v) for k, v in record.headers if k != name]
    if value is not None:
        headers.append((name, value))
    return dataclasses.replace(record, headers=headers)


def test_round_trip_keeps_what_policy_and_the_alert_need(
        transcript_factory: Callable[..., Transcript]) -> None:
    original = transcript_factory(text="Shut up, you idiot!")
    decoded = decode_transcript(record_of(original).headers, record_of(original).value)
    for name in ("transcript_id", "text", "language", "confidence", "confidence_class",
                 "model_id", "guard_reasons"):
        assert getattr(decoded, name) == getattr(original, name), name
    assert [w.text for w in decoded.words] == [w.text for w in original.words]
    for dw, ow in zip(decoded.words, original.words, strict=True):  # to the millisecond
        assert (dw.start_offset_s, dw.end_offset_s) == pytest.approx(
            (ow.start_offset_s, ow.end_offset_s), abs=1e-3)
    assert decoded.asr_seconds == pytest.approx(original.asr_seconds, abs=1e-4)
    s, o = decoded.segment, original.segment
    assert (s.segment_id, s.room_id, s.speaker_id, s.speaker_name) == \
        (o.segment_id, o.room_id, o.speaker_id, o.speaker_name)
    assert s.start_offset_s == pytest.approx(o.start_offset_s, abs=1e-3)
    assert s.end_offset_s == pytest.approx(o.end_offset_s, abs=1e-3)
    assert s.end_time == pytest.approx(o.end_time, abs=1e-3)
    assert s.pcm == b""  # the audio does not travel with the transcript
    engine = PolicyEngine(RulePack.load(default_pack_path()))
    before, after = engine.evaluate(original), engine.evaluate(decoded)
    assert before and [a.alert_id for a in after] == [a.alert_id for a in before]
    # The alert event built from the decoded transcript is the original's, field for field.
    assert alert_data(after[0], detected_at=0.0) == alert_data(before[0], detected_at=0.0)


def test_end_of_speech_comes_from_the_header_else_from_the_speech_end_time(
        transcript_factory: Callable[..., Transcript]) -> None:
    record = record_of(transcript_factory())
    end_time = decode_transcript(record.headers, record.value).segment.end_time
    ended_at = time.time() - 2.0
    plain = decode_transcript(record.headers, record.value)
    tagged = with_speech_ended_at(record, ended_at)
    decoded = decode_transcript(tagged.headers, tagged.value)
    assert time.monotonic() - decoded.segment.end_monotonic == pytest.approx(2.0, abs=0.05)
    assert time.monotonic() - plain.segment.end_monotonic == \
        pytest.approx(time.time() - end_time, abs=0.05)


def test_undetermined_language_comes_back_empty(
        transcript_factory: Callable[..., Transcript]) -> None:
    record = record_of(transcript_factory(language=""))
    assert json.loads(record.value)["language"] == "und"
    assert decode_transcript(record.headers, record.value).language == ""


def _bad_records(good: KafkaRecord, alert: KafkaRecord) -> list[tuple[str, KafkaRecord, str]]:
    """(what, record, reason): every way a transcript record can be unusable."""

    def drop(field: str) -> Callable[[dict[str, Any]], None]:
        return lambda d: d.pop(field)

    def set_(path: str, value: object) -> Callable[[dict[str, Any]], None]:
        def change(d: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            for p in parents:
                d = d[p]
            d[last] = value
        return change

    def backwards_word(d: dict[str, Any]) -> None:
        d["words"][0]["end_offset_s"] = d["words"][0]["start_offset_s"] - 0.1

    return [
        ("no ce_id", with_header(good, "ce_id", None), "not_a_transcript"),
        ("an alert", alert, "not_a_transcript"),
        ("value not JSON", dataclasses.replace(good, value=b"\xff{"), "not_a_transcript"),
        ("empty value", dataclasses.replace(good, value=b""), "not_a_transcript"),
        ("audio content type", with_header(good, "content-type", b"audio/L16;rate=16000"),
         "not_a_transcript"),
        ("bad ce_time", with_header(good, "ce_time", b"yesterday"), "bad_attributes"),
        ("alert dataschema", with_header(good, "ce_dataschema",
                                         b"urn:roomwarden:schema:alert.v1"), "bad_attributes"),
        ("NaN confidence", with_data(good, set_("confidence", float("nan"))), "non_finite"),
        ("infinite offset", with_data(good, set_("speech.end_offset_s", float("inf"))),
         "non_finite"),
        ("no text", with_data(good, drop("text")), "bad_data"),
        ("unknown class", with_data(good, set_("confidence_class", "sure")), "bad_data"),
        ("probability 2", with_data(good, set_("confidence", 2.0)), "bad_data"),
        ("bad end_time", with_data(good, set_("speech.end_time", "soon")), "bad_data"),
        ("ce_id is not the transcript_id", with_header(good, "ce_id", b"0123456789abcdef"),
         "inconsistent"),
        ("speech ends before it starts", with_data(good, set_("speech.end_offset_s", 0.5)),
         "inconsistent"),
        ("end_time before start_time",
         with_data(good, set_("speech.end_time", "2000-01-01T00:00:00.000Z")), "inconsistent"),
        ("word ends before it starts", with_data(good, backwards_word), "inconsistent"),
        ("speech-ended-at not a time", with_header(good, SPEECH_ENDED_AT_HEADER, b"noon"),
         "inconsistent"),
    ]


def test_bad_records_are_refused_with_their_reason(
        transcript_factory: Callable[..., Transcript],
        alert_factory: Callable[..., Any]) -> None:
    transcript = transcript_factory()
    good = record_of(transcript)
    alert = alert_record(alert_factory(transcript), source=SOURCE)
    decode_transcript(good.headers, good.value)  # the base record itself is fine
    for what, record, reason in _bad_records(good, alert):
        with pytest.raises(BadTranscript) as refused:
            decode_transcript(record.headers, record.value)
        assert refused.value.reason == reason, (what, refused.value)
        assert refused.value.detail, what


def test_the_detail_names_the_field_and_value(
        transcript_factory: Callable[..., Transcript]) -> None:
    good = record_of(transcript_factory())
    bad = with_data(good, lambda d: d.__setitem__("confidence", float("nan")))
    with pytest.raises(BadTranscript, match=r"non_finite: confidence is nan"):
        decode_transcript(bad.headers, bad.value)
    bad = with_data(good, lambda d: d.pop("model_id"))
    with pytest.raises(BadTranscript, match=r"'model_id' is a required property"):
        decode_transcript(bad.headers, bad.value)
