"""Segment records (alerts.segment_record): round trip, wire format, and every bad input
rejected with its reason."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from alerts.envelope import KafkaRecord
from alerts.schemas import SEGMENT, schema, validate
from alerts.segment_record import (
    DLQ_DETAIL_HEADER,
    DLQ_OFFSET_HEADER,
    DLQ_PARTITION_HEADER,
    DLQ_REASON_HEADER,
    DLQ_TOPIC_HEADER,
    METADATA_HEADER,
    SEGMENT_CONTENT_TYPE,
    BadSegment,
    dead_letter_record,
    decode_segment,
    segment_record,
)
from ingest.frames import SpeechSegment
from tests.fakes_asr import make_segment

SOURCE = "/roomwarden/test"


def speech(duration_s: float = 1.5, offset: float = 12.5) -> SpeechSegment:
    # A ramp, so byte order mistakes cannot hide behind symmetric samples.
    samples = int(duration_s * 16000)
    pcm = b"".join(((i * 37) % 65536 - 32768).to_bytes(2, "little", signed=True)
                   for i in range(samples))
    seg = make_segment(pcm, start_offset_s=offset, room_id="room-42", speaker_id="alice",
                       seq=3, start_time=1_763_755_200.0, stream_id="whip:abc")
    return dataclasses.replace(seg, speaker_name="Alice A.", forced_split=True,
                               end_monotonic=time.monotonic() - 0.25)


def headers_of(record: KafkaRecord) -> dict[str, bytes]:
    return dict(record.headers)


def with_metadata(record: KafkaRecord, **changes: Any) -> list[tuple[str, bytes]]:
    """The record's headers with metadata fields changed (None deletes); NaN written as NaN."""
    meta = json.loads(headers_of(record)[METADATA_HEADER])
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    raw = json.dumps(meta).encode()  # allow_nan: a careless producer writes NaN / Infinity
    return [(k, raw if k == METADATA_HEADER else v) for k, v in record.headers]


def with_header(record: KafkaRecord, name: str, value: bytes | None) -> list[tuple[str, bytes]]:
    out = [(k, v) for k, v in record.headers if k != name]
    return out if value is None else [*out, (name, value)]


def test_round_trip_keeps_every_field_and_the_audio() -> None:
    seg = speech()
    record = segment_record(seg, source=SOURCE)
    assert record.topic == "roomwarden.segments.v1"
    assert record.key == b"room-42"
    h = headers_of(record)
    assert h["ce_type"] == SEGMENT.type.encode()
    assert h["ce_id"] == seg.segment_id.encode()
    assert h["ce_dataschema"] == SEGMENT.dataschema.encode()
    assert h["content-type"] == SEGMENT_CONTENT_TYPE.encode()
    assert h["ce_partitionkey"] == b"room-42"
    validate("segment", json.loads(h[METADATA_HEADER]))
    # audio/L16 is big-endian on the wire (RFC 2586); the segment holds s16le.
    assert record.value[:2] == seg.pcm[1::-1]
    assert len(record.value) == len(seg.pcm) == 48_000

    back = decode_segment(record.headers, record.value)
    for f in ("room_id", "speaker_id", "segment_id", "seq", "pcm", "start_offset_s",
              "end_offset_s", "start_time", "end_time", "forced_split", "stream_id",
              "speaker_name"):
        assert getattr(back, f) == getattr(seg, f), f
    # end_monotonic crossed as wall-clock time and was mapped onto this process's clock.
    assert back.end_monotonic == pytest.approx(seg.end_monotonic, abs=0.01)
    assert back.segment_id == SpeechSegment.make_id(back.room_id, back.speaker_id,
                                                    back.start_offset_s, back.pcm)


def test_a_15_s_segment_fits_a_default_kafka_message() -> None:
    record = segment_record(speech(duration_s=15.0), source=SOURCE)
    size = len(record.value) + sum(len(k) + len(v) for k, v in record.headers)
    assert len(record.value) == 480_000
    assert size < 1_000_000


def test_decode_accepts_mapping_headers_and_case() -> None:
    record = segment_record(speech(), source=SOURCE)
    upper = {k.upper(): v for k, v in record.headers}
    assert decode_segment(upper, record.value).segment_id == speech().segment_id


BadCase = Callable[[KafkaRecord], tuple[list[tuple[str, bytes]], bytes | None]]
BAD_CASES: dict[str, tuple[BadCase, str, str]] = {
    "wrong sample rate (metadata)": (
        lambda r: (with_metadata(r, sample_rate=8000), r.value), "wrong_sample_rate", "8000"),
    "wrong sample rate (content type)": (
        lambda r: (with_header(r, "content-type", b"audio/L16;rate=48000;channels=1"), r.value),
        "wrong_sample_rate", "48000"),
    "zero length": (lambda r: (r.headers, b""), "empty_audio", "zero-length"),
    "no value at all": (lambda r: (r.headers, None), "empty_audio", "zero-length"),
    "odd byte count": (lambda r: (r.headers, r.value + b"\x00"), "odd_byte_count", "48001"),
    "NaN offset": (lambda r: (with_metadata(r, start_offset_s=float("nan")), r.value),
                   "non_finite", "start_offset_s is nan"),
    "infinite end time": (lambda r: (with_metadata(r, end_time=float("inf")), r.value),
                          "non_finite", "end_time is inf"),
    "500 s declared": (lambda r: (with_metadata(r, end_offset_s=512.5), r.value),
                       "absurd_duration", "500.000 s"),
    "negative duration": (lambda r: (with_metadata(r, end_offset_s=10.0), r.value),
                          "absurd_duration", "before start_offset_s"),
    "ends before it starts (wall clock)": (
        lambda r: (with_metadata(r, end_time=1.0), r.value), "absurd_duration", "end_time"),
    "offsets disagree with the audio": (
        lambda r: (with_metadata(r, end_offset_s=16.0), r.value), "duration_mismatch",
        "declare 3.500 s but the audio is 1.500 s"),
    "missing field": (lambda r: (with_metadata(r, room_id=None), r.value), "bad_metadata",
                      "'room_id' is a required property"),
    "negative seq": (lambda r: (with_metadata(r, seq=-1), r.value), "bad_metadata", "seq"),
    "no metadata header": (lambda r: (with_header(r, METADATA_HEADER, None), r.value),
                           "bad_metadata", "no roomwarden-segment header"),
    "metadata not JSON": (lambda r: (with_header(r, METADATA_HEADER, b"{oops"), r.value),
                          "bad_metadata", "not JSON"),
    "metadata not an object": (lambda r: (with_header(r, METADATA_HEADER, b"[1]"), r.value),
                               "bad_metadata", "not a JSON object"),
    "id differs from segment_id": (lambda r: (with_header(r, "ce_id", b"ff" * 16), r.value),
                                   "bad_metadata", "is not the segment_id"),
    "stereo": (lambda r: (with_metadata(r, channels=2), r.value), "wrong_encoding",
               "channels is 2"),
    "not L16": (lambda r: (with_header(r, "content-type", b"audio/opus"), r.value),
                "wrong_encoding", "audio/opus"),
    "a transcript event": (
        lambda r: (with_header(r, "ce_type", b"io.roomwarden.transcript.v1"), r.value),
        "not_a_segment", "io.roomwarden.transcript.v1"),
    "not a CloudEvent": (lambda r: ([], r.value), "not_a_segment", "no ce_type header"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_rejected_with_its_reason(case: str) -> None:
    make_bad, reason, detail = BAD_CASES[case]
    headers, value = make_bad(segment_record(speech(), source=SOURCE))
    with pytest.raises(BadSegment) as info:
        decode_segment(headers, value)
    assert info.value.reason == reason
    assert detail in info.value.detail
    assert str(info.value).startswith(f"{reason}: ")


def test_the_encoder_refuses_what_the_decoder_would_reject() -> None:
    seg = speech()
    with pytest.raises(BadSegment, match="empty_audio"):
        segment_record(dataclasses.replace(seg, pcm=b""), source=SOURCE)
    with pytest.raises(BadSegment, match="non_finite: start_time is nan"):
        segment_record(dataclasses.replace(seg, start_time=float("nan")), source=SOURCE)
    with pytest.raises(BadSegment, match="absurd_duration"):
        segment_record(make_segment(duration_s=61.0), source=SOURCE)


def test_dead_letter_record_keeps_the_original_and_says_why() -> None:
    record = segment_record(speech(), source=SOURCE)
    dlq = dead_letter_record(
        topic="roomwarden.segments.dlq.v1", key=record.key, headers=record.headers,
        value=record.value, reason="wrong_sample_rate", detail="sample_rate is 8000 Hz",
        source_topic="roomwarden.segments.v1", source_partition=2, source_offset=41,
        worker="/roomwarden/w1")
    assert dlq.key == record.key and dlq.value == record.value
    assert dlq.headers[: len(record.headers)] == record.headers
    h = headers_of(dlq)
    assert h[DLQ_REASON_HEADER] == b"wrong_sample_rate"
    assert h[DLQ_DETAIL_HEADER] == b"sample_rate is 8000 Hz"
    assert (h[DLQ_TOPIC_HEADER], h[DLQ_PARTITION_HEADER], h[DLQ_OFFSET_HEADER]) == (
        b"roomwarden.segments.v1", b"2", b"41")


def test_segment_schema_is_registered_with_its_id() -> None:
    assert schema("segment")["$id"] == SEGMENT.dataschema
    assert schema(SEGMENT.type)["title"].startswith("RoomWarden speech segment")
