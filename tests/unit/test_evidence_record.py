"""Evidence records (alerts.evidence_record): a flagged segment's audio as a WAV CloudEvent,
read back strictly, every bad input rejected with its reason."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
import wave
from typing import Any

import pytest

from alerts.envelope import KafkaRecord
from alerts.evidence_record import (
    EVIDENCE_TOPIC,
    MAX_EVIDENCE_BYTES,
    METADATA_HEADER,
    BadEvidence,
    decode_evidence,
    evidence_record,
    wav_bytes,
)
from alerts.schemas import EVIDENCE, validate
from ingest.frames import SpeechSegment
from tests.fakes_asr import make_segment

SOURCE = "/roomwarden/test"
ALERT_IDS = ["4b0d1c7e-5a0b-5f57-9d4e-0c2f4f3f9a11", "9a3e2b10-1c2d-5e4f-8a9b-0c1d2e3f4a5b"]


def speech(duration_s: float = 1.5) -> SpeechSegment:
    # A ramp, so byte-order or truncation mistakes cannot hide behind silence.
    samples = int(duration_s * 16000)
    pcm = b"".join(((i * 37) % 65536 - 32768).to_bytes(2, "little", signed=True)
                   for i in range(samples))
    seg = make_segment(pcm, start_offset_s=12.5, room_id="room-42", speaker_id="alice", seq=3,
                       start_time=1_763_755_200.0, stream_id="whip:abc")
    return dataclasses.replace(seg, speaker_name="Alice A.", end_monotonic=time.monotonic())


def metadata_of(record: KafkaRecord) -> dict[str, Any]:
    raw = record.header(METADATA_HEADER)
    assert raw is not None
    parsed: dict[str, Any] = json.loads(raw)
    return parsed


def with_metadata(record: KafkaRecord, **changes: Any) -> KafkaRecord:
    meta = metadata_of(record)
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    raw = json.dumps(meta).encode()  # allow_nan: a careless producer writes NaN
    return dataclasses.replace(record, headers=[
        (k, raw if k == METADATA_HEADER else v) for k, v in record.headers])


def with_value(record: KafkaRecord, value: bytes) -> KafkaRecord:
    """Another value, with a matching sha256 (so the checks after the checksum are reached)."""
    return with_metadata(dataclasses.replace(record, value=value),
                         sha256=hashlib.sha256(value).hexdigest())


def with_header(record: KafkaRecord, name: str, value: bytes) -> KafkaRecord:
    return dataclasses.replace(record, headers=[
        (k, value if k == name else v) for k, v in record.headers])


def wav_of(pcm: bytes, *, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buffer.getvalue()


def test_evidence_record_carries_the_segment_as_a_playable_wav_with_schema_valid_metadata(
) -> None:
    segment = speech()
    record = evidence_record(segment, alert_ids=[*ALERT_IDS, ALERT_IDS[0]], source=SOURCE)
    headers = dict(record.headers)
    assert record.topic == EVIDENCE_TOPIC and record.key == b"room-42"
    assert headers["ce_type"] == EVIDENCE.type.encode()
    assert headers["ce_id"] == segment.segment_id.encode()
    assert headers["ce_dataschema"] == EVIDENCE.dataschema.encode()
    assert headers["ce_partitionkey"] == b"room-42"
    assert headers["content-type"] == b"audio/wav"
    with wave.open(io.BytesIO(record.value), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16000)
        assert w.readframes(w.getnframes()) == segment.pcm
    meta = metadata_of(record)
    validate("evidence", meta)
    assert meta["alert_ids"] == ALERT_IDS  # once each, in order
    assert meta["sha256"] == hashlib.sha256(record.value).hexdigest()
    assert (meta["start"], meta["end"]) == (segment.start_time, segment.end_time)
    assert meta["duration_s"] == 1.5 and meta["format"] == "wav"
    assert meta["speaker_name"] == "Alice A." and meta["stream_id"] == "whip:abc"

    evidence = decode_evidence(record.headers, record.value)
    assert evidence.metadata == meta and evidence.wav == record.value
    assert (evidence.segment_id, evidence.room_id, evidence.end) == (
        segment.segment_id, "room-42", segment.end_time)
    assert decode_evidence(dict(record.headers), record.value) == evidence  # mapping headers


def test_wav_bytes_is_the_standard_44_byte_header_plus_the_samples() -> None:
    pcm = b"\x01\x02" * 100
    assert len(wav_bytes(pcm)) == 44 + len(pcm)


@pytest.mark.parametrize(("segment", "alert_ids", "reason"), [
    (make_segment(b""), ALERT_IDS, "empty_audio"),
    (speech(0.5), [], "bad_metadata"),
    (make_segment(duration_s=MAX_EVIDENCE_BYTES / 32000 + 0.1), ALERT_IDS, "too_large"),
])
def test_evidence_record_refuses_what_would_not_be_evidence(
        segment: SpeechSegment, alert_ids: list[str], reason: str) -> None:
    with pytest.raises(BadEvidence) as caught:
        evidence_record(segment, alert_ids=alert_ids, source=SOURCE)
    assert caught.value.reason == reason


def test_the_largest_evidence_fits_a_default_kafka_message() -> None:
    record = evidence_record(make_segment(duration_s=31.0), alert_ids=ALERT_IDS, source=SOURCE)
    size = len(record.value) + len(record.key) + sum(len(k) + len(v) for k, v in record.headers)
    assert size < 1_048_576


GOOD = evidence_record(speech(), alert_ids=ALERT_IDS, source=SOURCE)
PCM = speech().pcm


@pytest.mark.parametrize(("record", "reason", "named"), [
    (with_header(GOOD, "ce_type", b"io.roomwarden.segment.v1"), "not_evidence",
     "io.roomwarden.segment.v1"),
    (dataclasses.replace(GOOD, headers=[h for h in GOOD.headers if h[0] != "ce_id"]),
     "not_evidence", "ce_id"),
    (dataclasses.replace(GOOD, headers=[h for h in GOOD.headers if h[0] != METADATA_HEADER]),
     "bad_metadata", METADATA_HEADER),
    (with_header(GOOD, METADATA_HEADER, b"{not json"), "bad_metadata", "not JSON"),
    (with_header(GOOD, METADATA_HEADER, b"[1, 2]"), "bad_metadata", "not a JSON object"),
    (with_metadata(GOOD, start=float("nan")), "non_finite", "start"),
    (with_metadata(GOOD, sample_rate=8000), "bad_metadata", "sample_rate"),
    (with_metadata(GOOD, alert_ids=None), "bad_metadata", "alert_ids"),
    (with_metadata(GOOD, extra="x"), "bad_metadata", "extra"),
    (with_metadata(GOOD, end=1.0), "inconsistent", "ends"),
    (with_header(GOOD, "ce_id", b"0" * 32), "inconsistent", "ce_id"),
    (with_header(GOOD, "content-type", b"audio/L16;rate=16000"), "wrong_encoding",
     "audio/L16"),
    (dataclasses.replace(GOOD, value=b""), "empty_audio", "zero-length"),
    (dataclasses.replace(GOOD, value=GOOD.value[:-2] + b"\x00\x00"), "checksum_mismatch",
     "sha256"),
    (with_value(GOOD, b"RIFF" + b"\x00" * 100), "bad_wav", "not a readable WAV"),
    (with_value(GOOD, GOOD.value[:-100]), "bad_wav", "truncated"),
    (with_value(GOOD, wav_of(PCM, channels=2)), "wrong_encoding", "2 channel"),
    (with_value(GOOD, wav_of(PCM, rate=8000)), "wrong_sample_rate", "8000"),
    (with_value(GOOD, wav_of(b"")), "empty_audio", "no samples"),
    (with_value(GOOD, wav_of(PCM[:16000])), "duration_mismatch", "duration_s"),
    (with_metadata(GOOD, end_offset_s=20.0), "duration_mismatch", "end_offset_s"),
])
def test_decode_evidence_rejects_each_bad_record_with_its_reason(
        record: KafkaRecord, reason: str, named: str) -> None:
    with pytest.raises(BadEvidence) as caught:
        decode_evidence(record.headers, record.value)
    assert caught.value.reason == reason, caught.value
    assert named in caught.value.detail
