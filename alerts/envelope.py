"""Alerts and transcripts as Kafka records: CloudEvents 1.0, binary content mode.

Binary mode (CloudEvents Kafka protocol binding): every attribute is a ``ce_<name>`` header
(UTF-8), ``datacontenttype`` is the ``content-type`` header, and the Kafka value is the event
data alone -- compact UTF-8 JSON, valid against ``alerts/schemas/<event>.v1.json``. The key is
the room id (the CloudEvents ``partitionkey`` extension), so one room's events stay in order
on one partition. Headers are produced by the ``cloudevents`` 2.x SDK's Kafka binding
(``cloudevents.core.bindings.kafka.to_binary``), which also validates the attributes;
:func:`decode_record` reads them back by hand (strictly: the SDK's ``from_binary`` would invent
an id for a record without ``ce_id``), and stock SDK consumers read our records unchanged.

Example record (alert)::

    topic    roomwarden.alerts.v1
    key      b"room-42"
    headers  ce_specversion=1.0  ce_id=<alert_id>  ce_source=/roomwarden/roomwarden-0
             ce_type=io.roomwarden.moderation.alert.v1  ce_time=2026-11-21T20:13:00.123000Z
             ce_subject=rooms/room-42  ce_dataschema=urn:roomwarden:schema:alert.v1
             content-type=application/json  ce_partitionkey=room-42
    value    {"alert_id": ..., "room_id": "room-42", ...}

Gaps (``roomwarden.gaps.v1``, ``io.roomwarden.gap.v1``) say when a room or speaker could not be
heard, so "no alert" there is not read as "nothing said".

Ids are deterministic (the alert id is a UUIDv5 of segment, rule and span; the transcript id a
hash of segment and model), so a replayed segment yields the same ``ce_id`` and consumers
deduplicate by it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from alerts.schemas import ALERT, GAP, TRANSCRIPT, EventSpec
from asr.frames import Transcript
from ingest.frames import SpeechSegment, StreamGap
from policy.frames import Alert

__all__ = [
    "ALERTS_TOPIC",
    "CONTENT_TYPE",
    "EnvelopeError",
    "GAPS_TOPIC",
    "TRANSCRIPTS_TOPIC",
    "KafkaRecord",
    "alert_data",
    "alert_record",
    "cloudevent_record",
    "decode_record",
    "gap_data",
    "gap_record",
    "json_record",
    "rfc3339",
    "transcript_data",
    "transcript_record",
]

ALERTS_TOPIC = "roomwarden.alerts.v1"
TRANSCRIPTS_TOPIC = "roomwarden.transcripts.v1"
GAPS_TOPIC = "roomwarden.gaps.v1"
CONTENT_TYPE = "application/json"
UNDETERMINED_LANGUAGE = "und"
"""ISO 639-2 "undetermined": what ``language`` says when the model reported none."""

_FORMAT = JSONFormat()
_JSON_TYPE = re.compile(r"^application/([\w.+-]+\+)?json(\s*;.*)?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One record ready for a Kafka producer.

    Attributes:
        topic: destination topic.
        key: the room id, UTF-8 (partitioning: one room's records stay in order).
        headers: ``ce_*`` attributes and ``content-type``, in aiokafka's ``[(str, bytes)]`` form.
        value: the event data, UTF-8 JSON.
    """

    topic: str
    key: bytes
    headers: list[tuple[str, bytes]]
    value: bytes

    def header(self, name: str) -> bytes | None:
        """The value of header ``name`` (last one wins), or None."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found


def rfc3339(unix_time: float) -> str:
    """Unix time as RFC 3339 UTC with milliseconds, e.g. ``2026-11-21T20:13:00.123Z``."""
    return _utc(unix_time).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utc(unix_time: float) -> datetime:
    """Unix time as an aware UTC datetime, truncated to the millisecond."""
    dt = datetime.fromtimestamp(unix_time, tz=UTC)
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def alert_data(alert: Alert, *, detected_at: float) -> dict[str, Any]:
    """The JSON data of an alert event (schema ``alerts/schemas/alert.v1.json``)."""
    transcript = alert.transcript
    segment = transcript.segment
    data: dict[str, Any] = {
        "alert_id": alert.alert_id,
        "room_id": segment.room_id,
        "speaker_id": segment.speaker_id,
        "speaker_name": segment.speaker_name,
        "segment_id": segment.segment_id,
        "transcript_id": transcript.transcript_id,
        "category": alert.category,
        "severity": alert.severity,
        "suggestion": alert.suggestion,
        "rule_id": alert.rule_id,
        "match": {"start": alert.match.start, "end": alert.match.end, "text": alert.match.text},
        "text": transcript.text,
        "confidence": _prob(transcript.confidence),
        "confidence_class": transcript.confidence_class,
        "language": transcript.language or UNDETERMINED_LANGUAGE,
        "model_id": transcript.model_id,
        "policy": {
            "name": alert.policy_name,
            "version": alert.policy_version,
            "sha256": alert.policy_hash,
        },
        "speech": _speech(segment),
        "detected_at": rfc3339(detected_at),
    }
    if alert.match.kind != "exact":  # optional in the schema: absent means exact
        data["match"]["kind"] = alert.match.kind
    if alert.transcript_ids:  # cross-segment matches only (optional in the schema)
        data["transcript_ids"] = list(alert.transcript_ids)
    if alert.score is not None:  # optional in the schema (absent in events from before it)
        data["score"] = _prob(alert.score)
    if alert.classifier_probability is not None:  # when the engine runs a classifier (optional)
        data["classifier"] = {"model_id": alert.classifier_model_id,
                              "probability": _prob(alert.classifier_probability)}
    return data


def transcript_data(transcript: Transcript) -> dict[str, Any]:
    """The JSON data of a transcript event (schema ``alerts/schemas/transcript.v1.json``)."""
    segment = transcript.segment
    return {
        "transcript_id": transcript.transcript_id,
        "segment_id": segment.segment_id,
        "room_id": segment.room_id,
        "speaker_id": segment.speaker_id,
        "speaker_name": segment.speaker_name,
        "text": transcript.text,
        "language": transcript.language or UNDETERMINED_LANGUAGE,
        "words": [
            {
                "text": w.text,
                "start_offset_s": _offset(w.start_offset_s),
                "end_offset_s": _offset(w.end_offset_s),
                "probability": _prob(w.probability),
            }
            for w in transcript.words
        ],
        "confidence": _prob(transcript.confidence),
        "confidence_class": transcript.confidence_class,
        "guard_reasons": list(transcript.guard_reasons),
        "model_id": transcript.model_id,
        "speech": _speech(segment),
        "timings": {
            "asr_seconds": _seconds(transcript.asr_seconds),
            "queued_seconds": _seconds(transcript.queued_seconds),
        },
    }


def alert_record(
    alert: Alert,
    *,
    source: str,
    topic: str = ALERTS_TOPIC,
    detected_at: float | None = None,
) -> KafkaRecord:
    """An alert as a CloudEvents binary-mode Kafka record.

    Args:
        alert: the verdict.
        source: CloudEvents ``source``, e.g. ``/roomwarden/<instance>``.
        topic: destination topic.
        detected_at: Unix time the alert was raised (``data.detected_at`` and ``ce_time``);
            default: now.
    """
    when = time.time() if detected_at is None else detected_at
    return json_record(
        ALERT,
        topic=topic,
        event_id=alert.alert_id,
        source=source,
        room_id=alert.room_id,
        when=when,
        data=alert_data(alert, detected_at=when),
    )


def transcript_record(
    transcript: Transcript,
    *,
    source: str,
    topic: str = TRANSCRIPTS_TOPIC,
    produced_at: float | None = None,
) -> KafkaRecord:
    """A transcript as a CloudEvents binary-mode Kafka record.

    Args:
        transcript: what was said.
        source: CloudEvents ``source``, e.g. ``/roomwarden/<instance>``.
        topic: destination topic.
        produced_at: Unix time the transcript was produced (``ce_time``); default: now.
            The speech's own times are in ``data.speech``.
    """
    return json_record(
        TRANSCRIPT,
        topic=topic,
        event_id=transcript.transcript_id,
        source=source,
        room_id=transcript.room_id,
        when=time.time() if produced_at is None else produced_at,
        data=transcript_data(transcript),
    )


def gap_data(gap: StreamGap) -> dict[str, Any]:
    """The JSON data of a gap event (schema ``alerts/schemas/gap.v1.json``)."""
    return {
        "gap_id": gap.gap_id,
        "room_id": gap.room_id,
        "speaker_id": gap.speaker_id,
        "start_time": rfc3339(gap.start_time),
        "end_time": rfc3339(max(gap.end_time, gap.start_time)),
        "duration_s": round(gap.duration_s, 3),
        "reason": gap.reason,
        "source": gap.source,
    }


def gap_record(gap: StreamGap, *, source: str, topic: str = GAPS_TOPIC) -> KafkaRecord:
    """A stream gap as a CloudEvents binary-mode Kafka record (``ce_time`` = its end).

    Args:
        gap: what was not heard, and when.
        source: CloudEvents ``source``, e.g. ``/roomwarden/<instance>`` (``gap.source`` names
            the ingest source instead, e.g. ``janus``).
        topic: destination topic.
    """
    return json_record(GAP, topic=topic, event_id=gap.gap_id, source=source, room_id=gap.room_id,
                   when=gap.end_time, data=gap_data(gap))


class EnvelopeError(ValueError):
    """A record is not a RoomWarden CloudEvent in binary mode (missing attribute, not JSON)."""


def decode_record(
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes],
    value: bytes,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Read a binary-mode record back: ``(attributes, data)``.

    ``attributes`` maps CloudEvents attribute names (``id``, ``type``, ``time``, ...,
    ``datacontenttype``) to their header strings, ready for
    :func:`alerts.schemas.validate_attributes`; ``data`` is the parsed JSON value. Headers may
    be aiokafka's ``((name, bytes), ...)`` or a mapping; names are case-insensitive. (The SDK's
    ``from_binary`` is not used here because it invents a random id when ``ce_id`` is missing.)

    Raises:
        EnvelopeError: a required attribute (``specversion``, ``id``, ``source``, ``type``) is
            missing or empty, ``specversion`` is not 1.0, the content type is not JSON, or
            the value is not a JSON object.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    attributes: dict[str, str] = {}
    for name, raw in pairs:
        lowered = name.lower()
        if lowered.startswith(ce_kafka.CE_PREFIX):
            attributes[lowered[len(ce_kafka.CE_PREFIX):]] = bytes(raw).decode("utf-8")
        elif lowered == "content-type":
            attributes["datacontenttype"] = bytes(raw).decode("utf-8")
    missing = [a for a in ("specversion", "id", "source", "type") if not attributes.get(a)]
    if missing:
        names = ", ".join(f"ce_{m}" for m in missing)
        raise EnvelopeError(f"not a binary-mode CloudEvent: no {names} header")
    if attributes["specversion"] != "1.0":
        raise EnvelopeError(f"unsupported CloudEvents specversion {attributes['specversion']!r}")
    content_type = attributes.get("datacontenttype", CONTENT_TYPE)
    if not _JSON_TYPE.match(content_type):
        raise EnvelopeError(f"record data is {content_type!r}, not JSON")
    try:
        data = json.loads(value)
    except (ValueError, TypeError) as exc:
        raise EnvelopeError(f"record value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EnvelopeError(f"record value is not a JSON object: {value[:80]!r}")
    return attributes, data


def json_record(
    spec: EventSpec,
    *,
    topic: str,
    event_id: str,
    source: str,
    room_id: str,
    when: float,
    data: Mapping[str, Any],
) -> KafkaRecord:
    """A JSON event as a binary-mode record: ``ce_time`` is ``when`` (Unix time) to the
    millisecond, the value ``data`` as compact UTF-8 JSON (serialised here rather than by the
    SDK: compact separators and raw UTF-8, so room text in any script stays readable)."""
    return cloudevent_record(
        spec, topic=topic, event_id=event_id, source=source, room_id=room_id,
        time=_utc(when), content_type=CONTENT_TYPE,
        value=json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def cloudevent_record(
    spec: EventSpec,
    *,
    topic: str,
    event_id: str,
    source: str,
    room_id: str,
    time: datetime,
    content_type: str,
    value: bytes,
    extra_headers: Iterable[tuple[str, bytes]] = (),
) -> KafkaRecord:
    """One RoomWarden CloudEvent as a binary-mode Kafka record (headers by the SDK's binding).

    Args:
        spec: the event's ``type`` and ``dataschema``.
        topic: destination topic.
        event_id: ``ce_id``.
        source: ``ce_source``, e.g. ``/roomwarden/<instance>``.
        room_id: the key, ``ce_partitionkey`` and ``ce_subject`` (``rooms/<room_id>``).
        time: ``ce_time`` (aware).
        content_type: the ``content-type`` header (``datacontenttype``).
        value: the data, already encoded.
        extra_headers: appended after the SDK's (e.g. the metadata header of an audio record).
    """
    event = CloudEvent(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": spec.type,
            "time": time,
            "subject": f"rooms/{room_id}",
            "dataschema": spec.dataschema,
            "datacontenttype": content_type,
            "partitionkey": room_id,
        },
        value,
    )
    message = ce_kafka.to_binary(event, _FORMAT)
    return KafkaRecord(topic=topic, key=room_id.encode("utf-8"),
                       headers=[*message.headers.items(), *extra_headers],
                       value=bytes(message.value or b""))


def _speech(segment: SpeechSegment) -> dict[str, Any]:
    return {
        "start_offset_s": _offset(segment.start_offset_s),
        "end_offset_s": _offset(segment.end_offset_s),
        "start_time": rfc3339(segment.start_time),
        "end_time": rfc3339(segment.end_time),
    }


def _offset(seconds: float) -> float:
    """Stream offsets to the millisecond (the precision segment ids are built with)."""
    return round(max(seconds, 0.0), 3)


def _seconds(seconds: float) -> float:
    return round(max(seconds, 0.0), 4)


def _prob(p: float) -> float:
    return round(min(max(p, 0.0), 1.0), 4)
