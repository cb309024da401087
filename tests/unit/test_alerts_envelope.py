"""CloudEvents binary-mode records for alerts and transcripts: golden headers and values,
schema validity, deterministic ids, decode round trip."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import datetime

import pytest
from cloudevents.core.bindings import kafka as ce_kafka

from alerts.envelope import (
    EnvelopeError,
    KafkaRecord,
    alert_record,
    decode_record,
    rfc3339,
    transcript_record,
)
from alerts.schemas import (
    ALERT,
    TRANSCRIPT,
    EventValidationError,
    event_spec,
    validate,
    validate_attributes,
)
from asr.frames import Transcript
from ingest.frames import SpeechSegment
from policy.frames import Alert

# Builders are fixtures of tests/conftest.py (events straight from the frames, fake PCM).
MakeSegment = Callable[..., SpeechSegment]
MakeTranscript = Callable[..., Transcript]
MakeAlert = Callable[..., Alert]

SOURCE = "/roomwarden/test-0"
T0 = 1_763_755_200.0  # 2025-11-21T20:00:00Z, the builders' stream origin
POLICY_SHA = hashlib.sha256(b"default pack").hexdigest()


def headers(record: KafkaRecord) -> dict[str, bytes]:
    return dict(record.headers)


def test_alert_record_golden(alert_factory: MakeAlert) -> None:
    alert = alert_factory()
    record = alert_record(alert, source=SOURCE, detected_at=T0 + 14.0)
    assert record.topic == "roomwarden.alerts.v1"
    assert record.key == b"room-42"
    assert headers(record) == {
        "ce_specversion": b"1.0",
        "ce_id": alert.alert_id.encode(),
        "ce_source": b"/roomwarden/test-0",
        "ce_type": b"io.roomwarden.moderation.alert.v1",
        "ce_time": b"2025-11-21T20:00:14Z",
        "ce_subject": b"rooms/room-42",
        "ce_dataschema": b"urn:roomwarden:schema:alert.v1",
        "content-type": b"application/json",
        "ce_partitionkey": b"room-42",
    }
    data = json.loads(record.value)
    seg = alert.transcript.segment
    assert data == {
        "alert_id": alert.alert_id,
        "room_id": "room-42",
        "speaker_id": "alice",
        "speaker_name": "",
        "segment_id": seg.segment_id,
        "transcript_id": alert.transcript.transcript_id,
        "category": "abuse",
        "severity": "medium",
        "suggestion": "review",
        "rule_id": "abuse.idiot",
        "match": {"start": 11, "end": 16, "text": "idiot"},
        "text": "you are an idiot",
        "confidence": 0.91,
        "confidence_class": "confident",
        "language": "en",
        "model_id": "tiny.en@1a5afae06a4d",
        "policy": {"name": "default", "version": "2025.11", "sha256": POLICY_SHA},
        "speech": {"start_offset_s": 12.5, "end_offset_s": 13.5,
                   "start_time": "2025-11-21T20:00:12.500Z",
                   "end_time": "2025-11-21T20:00:13.500Z"},
        "detected_at": "2025-11-21T20:00:14.000Z",
    }
    assert data["text"][data["match"]["start"]:data["match"]["end"]] == data["match"]["text"]
    # compact UTF-8 JSON, keys in a fixed order
    assert record.value.startswith(b'{"alert_id":"')
    assert b": " not in record.value


def test_transcript_record_golden(transcript_factory: MakeTranscript) -> None:
    transcript = transcript_factory()
    record = transcript_record(transcript, source=SOURCE, produced_at=T0 + 13.75)
    assert record.topic == "roomwarden.transcripts.v1"
    assert record.key == b"room-42"
    h = headers(record)
    assert h["ce_id"] == transcript.transcript_id.encode()
    assert h["ce_type"] == b"io.roomwarden.transcript.v1"
    assert h["ce_time"] == b"2025-11-21T20:00:13.750000Z"
    assert h["ce_dataschema"] == b"urn:roomwarden:schema:transcript.v1"
    assert h["ce_subject"] == b"rooms/room-42" and h["ce_partitionkey"] == b"room-42"
    assert h["content-type"] == b"application/json"
    data = json.loads(record.value)
    assert list(data) == ["transcript_id", "segment_id", "room_id", "speaker_id", "speaker_name",
                          "text",
                          "language", "words", "confidence", "confidence_class",
                          "guard_reasons", "model_id", "speech", "timings"]
    assert data["words"][1] == {"text": "are", "start_offset_s": 12.7, "end_offset_s": 12.88,
                                "probability": 0.9}
    assert data["timings"] == {"asr_seconds": 0.0412, "queued_seconds": 0.0031}
    assert data["guard_reasons"] == []
    assert data["speech"]["end_time"] == "2025-11-21T20:00:13.500Z"


def test_topic_and_source_are_parameters(alert_factory: MakeAlert) -> None:
    record = alert_record(alert_factory(), source="/roomwarden/eu-1", topic="mod.alerts.v1")
    assert record.topic == "mod.alerts.v1"
    assert record.header("ce_source") == b"/roomwarden/eu-1"


@pytest.mark.parametrize("text,cls,lang", [
    ("you are an idiot", "confident", "en"),
    ("", "rejected", ""),  # guards rejected everything; language unknown
    ("低置信度 idiot", "low", "zh"),
])
def test_every_record_validates_against_its_schema(
        text: str, cls: str, lang: str, transcript_factory: MakeTranscript, alert_factory: MakeAlert
) -> None:
    transcript = transcript_factory(text=text, confidence_class=cls, language=lang,
                                 confidence=0.0 if not text else 0.5)
    t_record = transcript_record(transcript, source=SOURCE)
    attrs, data = decode_record(t_record.headers, t_record.value)
    validate("transcript", data)
    validate(attrs["type"], data)
    validate_attributes(attrs)
    if lang == "":
        assert data["language"] == "und"
    if text:
        a_record = alert_record(alert_factory(transcript), source=SOURCE)
        attrs, data = decode_record(a_record.headers, a_record.value)
        validate("alert", data)
        validate_attributes(attrs)
        assert data["text"] == text  # raw UTF-8 survives


def test_ids_are_deterministic(
        segment_factory: MakeSegment, transcript_factory: MakeTranscript, alert_factory: MakeAlert
) -> None:
    a1 = alert_record(alert_factory(), source=SOURCE, detected_at=T0)
    a2 = alert_record(alert_factory(), source=SOURCE, detected_at=T0)
    assert a1 == a2
    assert uuid.UUID(a1.header("ce_id").decode()).version == 5  # type: ignore[union-attr]
    t1 = transcript_record(transcript_factory(), source=SOURCE, produced_at=T0)
    assert t1 == transcript_record(transcript_factory(), source=SOURCE, produced_at=T0)
    # different speech -> different ids
    other = transcript_factory(segment_factory(offset=20.0))
    assert transcript_record(other, source=SOURCE).header("ce_id") != t1.header("ce_id")
    assert (alert_record(alert_factory(other), source=SOURCE).header("ce_id")
            != a1.header("ce_id"))


def test_headers_are_all_bytes_with_str_names(
        transcript_factory: MakeTranscript, alert_factory: MakeAlert
) -> None:
    for record in (alert_record(alert_factory(), source=SOURCE),
                   transcript_record(transcript_factory(), source=SOURCE)):
        assert isinstance(record.key, bytes) and isinstance(record.value, bytes)
        assert isinstance(record.headers, list)
        for name, value in record.headers:
            assert type(name) is str and type(value) is bytes
            value.decode("utf-8")
        assert len({n for n, _ in record.headers}) == len(record.headers)


def test_decode_round_trip_and_sdk_interop(alert_factory: MakeAlert) -> None:
    record = alert_record(alert_factory(), source=SOURCE, detected_at=T0 + 14.0)
    attrs, data = decode_record(record.headers, record.value)
    assert attrs == {
        "specversion": "1.0", "id": data["alert_id"], "source": SOURCE,
        "type": ALERT.type, "time": "2025-11-21T20:00:14Z", "subject": "rooms/room-42",
        "dataschema": ALERT.dataschema, "datacontenttype": "application/json",
        "partitionkey": "room-42",
    }
    assert data == json.loads(record.value)
    # headers as aiokafka hands them to consumers (a tuple), or as a mapping
    assert decode_record(tuple(record.headers), record.value) == (attrs, data)
    assert decode_record(dict(record.headers), record.value) == (attrs, data)
    # a stock CloudEvents consumer reads the same event
    event = ce_kafka.from_binary_event(
        ce_kafka.KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value))
    assert event.get_id() == data["alert_id"] and event.get_type() == ALERT.type
    assert event.get_extension("partitionkey") == "room-42"
    assert event.get_data() == data
    # ce_time and data.detected_at name the same instant
    assert event.get_time() == datetime.fromisoformat(data["detected_at"])


def test_rfc3339() -> None:
    assert rfc3339(T0) == "2025-11-21T20:00:00.000Z"
    assert rfc3339(T0 + 0.1239) == "2025-11-21T20:00:00.123Z"


def test_decode_rejects_records_missing_required_attributes(
        transcript_factory: MakeTranscript
) -> None:
    record = transcript_record(transcript_factory(), source=SOURCE)
    without_id = [(k, v) for k, v in record.headers if k != "ce_id"]
    with pytest.raises(EnvelopeError, match="ce_id"):
        decode_record(without_id, record.value)
    with pytest.raises(EnvelopeError, match="not JSON"):
        decode_record(record.headers, b"\xff not json")
    with pytest.raises(EnvelopeError, match="object"):
        decode_record(record.headers, b"[1, 2]")
    with pytest.raises(EnvelopeError, match="text/plain"):
        decode_record([*record.headers, ("content-type", b"text/plain")], record.value)


def test_attribute_schema_catches_wrong_attributes(alert_factory: MakeAlert) -> None:
    record = alert_record(alert_factory(), source=SOURCE)
    attrs, _ = decode_record(record.headers, record.value)
    for bad in ({"time": "yesterday"}, {"type": "io.example.other"},
                {"dataschema": TRANSCRIPT.dataschema}, {"specversion": "0.3"}):
        with pytest.raises(EventValidationError):
            validate_attributes({**attrs, **bad})
    missing = {k: v for k, v in attrs.items() if k != "subject"}
    with pytest.raises(EventValidationError, match="subject"):
        validate_attributes(missing)


def test_schemas_are_strict(alert_factory: MakeAlert) -> None:
    record = alert_record(alert_factory(), source=SOURCE)
    _, data = decode_record(record.headers, record.value)
    bad_cases = [
        {**data, "extra": 1},                                    # additionalProperties
        {k: v for k, v in data.items() if k != "rule_id"},       # required
        {**data, "severity": "catastrophic"},                    # enum
        {**data, "alert_id": "not-a-uuid"},                      # format uuid
        {**data, "detected_at": "2025-11-21 20:00"},             # format date-time
        {**data, "confidence": 1.5},                             # range
        {**data, "policy": {**data["policy"], "sha256": "abc"}},  # pattern
        {**data, "speech": {**data["speech"], "extra": True}},   # nested additionalProperties
    ]
    for bad in bad_cases:
        with pytest.raises(EventValidationError):
            validate("alert", bad)
    with pytest.raises(EventValidationError) as info:
        validate("alert", {**data, "severity": "x", "confidence": -1})
    assert len(info.value.errors) == 2  # every violation is reported


def test_event_spec_lookup() -> None:
    assert event_spec("alert") is ALERT
    assert event_spec(ALERT.type) is ALERT
    assert event_spec(TRANSCRIPT.dataschema) is TRANSCRIPT
    with pytest.raises(KeyError):
        event_spec("nope")


def test_schema_files_are_package_data_with_matching_ids() -> None:
    from importlib import resources

    from alerts.schemas import schema

    for spec in (ALERT, TRANSCRIPT):
        path = resources.files("alerts").joinpath("schemas", spec.schema_file)
        assert path.is_file()
        assert schema(spec.name)["$id"] == spec.dataschema
