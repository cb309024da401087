"""Speech segments as Kafka records, for ASR running as a separate consumer (``worker asr``).

One record per :class:`ingest.frames.SpeechSegment`, a CloudEvent in binary content mode::

    topic    roomwarden.segments.v1
    key      b"room-42"                       (one room's segments stay in order)
    headers  ce_specversion=1.0  ce_id=<segment_id>  ce_source=/roomwarden/<instance>
             ce_type=io.roomwarden.segment.v1  ce_time=<end of the segment, RFC 3339>
             ce_subject=rooms/room-42  ce_dataschema=urn:roomwarden:schema:segment.v1
             ce_partitionkey=room-42  content-type=audio/L16;rate=16000;channels=1
             roomwarden-segment={"segment_id": ..., "room_id": ..., "seq": 3, ...}
    value    the audio: 16 kHz mono 16-bit PCM

The value is the audio itself, not JSON and not base64: a 15 s segment (VAD's forced split) is
480 KB, well inside Kafka's default 1 MB message size, and nobody pays to parse it. The
metadata travels as compact JSON in the ``roomwarden-segment`` header, valid against
``alerts/schemas/segment.v1.json``. ``audio/L16`` is network byte order (RFC 2586), so the
samples are big-endian on the wire; the encoder and decoder swap them (a fraction of a
millisecond per segment), and any consumer that knows the registered type reads them right.

:func:`decode_segment` is strict, because a worker must never feed garbage to the model: every
way a record can be wrong raises :class:`BadSegment` with a stable ``reason`` label (for the
dead-letter topic's ``roomwarden-dlq-reason`` header and metrics) and a ``detail`` naming the
field and value. :func:`dead_letter_record` wraps a rejected record for the dead-letter topic:
original key, headers and value, plus why and where it came from.

Monotonic clocks do not cross processes: the encoder sends the end of speech as wall-clock
time (``speech_ended_at``) and the decoder maps it back onto its own ``time.monotonic()``, so
end-to-end latency stays measurable across the hop (to the accuracy of the hosts' clocks).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from alerts.envelope import KafkaRecord, cloudevent_record
from alerts.record_checks import (
    DecodeStep,
    check_top_level_finite,
    metadata_header_value,
    read_audio_envelope,
)
from alerts.schemas import SEGMENT, EventValidationError, validate
from ingest.frames import BYTES_PER_SAMPLE, SAMPLE_RATE, SpeechSegment

__all__ = [
    "DLQ_DETAIL_HEADER",
    "DLQ_OFFSET_HEADER",
    "DLQ_PARTITION_HEADER",
    "DLQ_REASON_HEADER",
    "DLQ_TOPIC_HEADER",
    "DLQ_WORKER_HEADER",
    "DURATION_TOLERANCE_S",
    "MAX_SEGMENT_S",
    "METADATA_HEADER",
    "SEGMENTS_DLQ_TOPIC",
    "SEGMENTS_TOPIC",
    "SEGMENT_CONTENT_TYPE",
    "BadSegment",
    "BadSegmentReason",
    "dead_letter_record",
    "decode_segment",
    "segment_metadata",
    "segment_record",
]

SEGMENTS_TOPIC = "roomwarden.segments.v1"
SEGMENTS_DLQ_TOPIC = "roomwarden.segments.dlq.v1"
SEGMENT_CONTENT_TYPE = f"audio/L16;rate={SAMPLE_RATE};channels=1"
METADATA_HEADER = "roomwarden-segment"
"""Header carrying the segment's metadata (JSON, schema ``segment.v1.json``)."""

MAX_SEGMENT_S = 60.0
"""Longest segment accepted (declared or actual). VAD force-splits at 15 s by default; anything
past a minute is a broken producer, and would not fit a default Kafka message anyway."""
DURATION_TOLERANCE_S = 0.1
"""How far the declared ``end_offset_s - start_offset_s`` may differ from the audio's length
(VAD's offsets match it exactly; other producers may round)."""

DLQ_REASON_HEADER = "roomwarden-dlq-reason"
"""Dead-letter header: the :data:`BadSegmentReason` label."""
DLQ_DETAIL_HEADER = "roomwarden-dlq-detail"
"""Dead-letter header: the human-readable detail (which field, which value)."""
DLQ_TOPIC_HEADER = "roomwarden-dlq-source-topic"
DLQ_PARTITION_HEADER = "roomwarden-dlq-source-partition"
DLQ_OFFSET_HEADER = "roomwarden-dlq-source-offset"
DLQ_WORKER_HEADER = "roomwarden-dlq-worker"
"""Dead-letter header: CloudEvents source of the worker that rejected the record."""

BadSegmentReason = Literal[
    "not_a_segment",      # not a binary-mode CloudEvent of type io.roomwarden.segment.v1
    "bad_metadata",       # roomwarden-segment header missing, not JSON, or against the schema
    "non_finite",         # NaN or infinity in a declared number
    "wrong_sample_rate",  # declared (header or content type) rate is not 16000 Hz
    "wrong_encoding",     # not audio/L16 mono
    "empty_audio",        # zero bytes of audio
    "odd_byte_count",     # not whole 16-bit samples
    "absurd_duration",    # over MAX_SEGMENT_S, negative, or ends before it starts
    "duration_mismatch",  # declared offsets disagree with the audio's length
]
_REASONS: dict[DecodeStep, BadSegmentReason] = {
    "not_a_cloudevent": "not_a_segment",
    "wrong_type": "not_a_segment",
    "bad_attributes": "not_a_segment",  # (JSON events only: an audio record has no such step)
    "non_finite": "non_finite",
    "bad_data": "bad_metadata",
}


class BadSegment(ValueError):
    """A record is not a usable speech segment.

    Attributes:
        reason: stable label (:data:`BadSegmentReason`): a metric label and the dead-letter
            reason header.
        detail: what exactly is wrong, naming the field and the value.
    """

    def __init__(self, reason: BadSegmentReason, detail: str) -> None:
        self.reason: BadSegmentReason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def segment_metadata(segment: SpeechSegment, *, speech_ended_at: float) -> dict[str, Any]:
    """The metadata of a segment record (schema ``alerts/schemas/segment.v1.json``)."""
    return {
        "segment_id": segment.segment_id,
        "room_id": segment.room_id,
        "speaker_id": segment.speaker_id,
        "speaker_name": segment.speaker_name,
        "stream_id": segment.stream_id,
        "seq": segment.seq,
        "start_offset_s": segment.start_offset_s,
        "end_offset_s": segment.end_offset_s,
        "start_time": segment.start_time,
        "end_time": segment.end_time,
        "speech_ended_at": speech_ended_at,
        "forced_split": segment.forced_split,
        "sample_rate": SAMPLE_RATE,
        "channels": 1,
    }


def segment_record(
    segment: SpeechSegment,
    *,
    source: str,
    topic: str = SEGMENTS_TOPIC,
    speech_ended_at: float | None = None,
) -> KafkaRecord:
    """A speech segment as a CloudEvents binary-mode Kafka record (see the module docstring).

    Args:
        segment: the speech (16 kHz mono s16le, as every segment is).
        source: CloudEvents ``source``, e.g. ``/roomwarden/<instance>``.
        topic: destination topic.
        speech_ended_at: Unix time the last voiced frame arrived; default: derived from
            ``segment.end_monotonic`` and this process's clocks.

    Raises:
        BadSegment: the segment itself would be rejected by :func:`decode_segment` (so a
            producer learns at once, not through the dead-letter topic).
    """
    if speech_ended_at is None:
        speech_ended_at = time.time() - (time.monotonic() - segment.end_monotonic)
    metadata = segment_metadata(segment, speech_ended_at=max(speech_ended_at, 0.0))
    _check_metadata(metadata)
    _check_audio(metadata, len(segment.pcm))
    return cloudevent_record(
        SEGMENT, topic=topic, event_id=segment.segment_id, source=source,
        room_id=segment.room_id, time=datetime.fromtimestamp(segment.end_time, tz=UTC),
        content_type=SEGMENT_CONTENT_TYPE, value=_swap_s16(segment.pcm),
        extra_headers=[(METADATA_HEADER, metadata_header_value(metadata))])


def decode_segment(
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes],
    value: bytes | None,
) -> SpeechSegment:
    """Read a segment record back, checking everything a worker relies on.

    ``end_monotonic`` is set on this process's monotonic clock from ``speech_ended_at``.

    Args:
        headers: the record's headers (aiokafka's ``((name, bytes), ...)`` or a mapping).
        value: the record's value (the audio).

    Raises:
        BadSegment: with the first problem found, checked in this order: not a segment event
            (``not_a_segment``); metadata header missing or not a JSON object
            (``bad_metadata``); NaN/infinity in a number (``non_finite``); declared sample
            rate (``wrong_sample_rate``); schema violations (``bad_metadata``); content type
            (``wrong_encoding`` / ``wrong_sample_rate``); the audio (``empty_audio``,
            ``odd_byte_count``); durations (``absurd_duration``, ``duration_mismatch``).
    """
    found, event_id, metadata = read_audio_envelope(
        headers, SEGMENT, metadata_header=METADATA_HEADER, text=_text, reject=_reject,
        expected=f"a segment is a {SEGMENT.type} CloudEvent")
    _check_metadata(metadata)
    if event_id != metadata["segment_id"]:
        raise BadSegment("bad_metadata", f"ce_id {event_id!r} is not the "
                         f"segment_id {metadata['segment_id']!r}")
    _check_content_type(_text(found.get("content-type")))
    pcm_be = value or b""
    _check_audio(metadata, len(pcm_be))
    speech_ended_at = float(metadata["speech_ended_at"])
    return SpeechSegment(
        room_id=metadata["room_id"],
        speaker_id=metadata["speaker_id"],
        segment_id=metadata["segment_id"],
        seq=int(metadata["seq"]),
        pcm=_swap_s16(pcm_be),
        start_offset_s=float(metadata["start_offset_s"]),
        end_offset_s=float(metadata["end_offset_s"]),
        start_time=float(metadata["start_time"]),
        end_time=float(metadata["end_time"]),
        end_monotonic=time.monotonic() - (time.time() - speech_ended_at),
        forced_split=bool(metadata["forced_split"]),
        stream_id=metadata["stream_id"],
        speaker_name=metadata["speaker_name"],
    )


def dead_letter_record(
    *,
    topic: str,
    key: bytes | None,
    headers: Iterable[tuple[str, bytes]],
    value: bytes | None,
    reason: str,
    detail: str,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    worker: str,
) -> KafkaRecord:
    """A rejected record for the dead-letter topic: the original key, headers and value
    unchanged, plus ``roomwarden-dlq-*`` headers saying why (``reason``: a
    :data:`BadSegmentReason` or the worker's own label, e.g. ``asr_failed``; ``detail``) and
    where it was read (topic, partition, offset) by which worker (CloudEvents source)."""
    extra = [
        (DLQ_REASON_HEADER, reason),
        (DLQ_DETAIL_HEADER, detail),
        (DLQ_TOPIC_HEADER, source_topic),
        (DLQ_PARTITION_HEADER, str(source_partition)),
        (DLQ_OFFSET_HEADER, str(source_offset)),
        (DLQ_WORKER_HEADER, worker),
    ]
    return KafkaRecord(
        topic=topic,
        key=key or b"",
        headers=[(k, bytes(v)) for k, v in headers] + [(k, v.encode("utf-8")) for k, v in extra],
        value=value or b"",
    )


# --- checks ------------------------------------------------------------------------------


def _reject(step: DecodeStep, detail: str) -> BadSegment:
    return BadSegment(_REASONS[step], detail)


def _check_metadata(metadata: Mapping[str, Any]) -> None:
    check_top_level_finite(metadata, _reject)
    rate = metadata.get("sample_rate")
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate != SAMPLE_RATE:
        raise BadSegment("wrong_sample_rate",
                         f"sample_rate is {rate} Hz; segments must be {SAMPLE_RATE} Hz")
    try:
        validate(SEGMENT.name, metadata)
    except EventValidationError as exc:
        raise BadSegment("bad_metadata", "; ".join(exc.errors)) from exc
    if metadata["channels"] != 1:
        raise BadSegment("wrong_encoding", f"channels is {metadata['channels']}; must be 1")


def _check_content_type(content_type: str | None) -> None:
    if not content_type:
        raise BadSegment("wrong_encoding", f"no content-type header; expected "
                         f"{SEGMENT_CONTENT_TYPE}")
    media, *params = [part.strip() for part in content_type.split(";")]
    if media.lower() != "audio/l16":
        raise BadSegment("wrong_encoding",
                         f"content-type {content_type!r}; expected {SEGMENT_CONTENT_TYPE}")
    values = {}
    for param in params:
        name, _, val = param.partition("=")
        values[name.strip().lower()] = val.strip().strip('"')
    if values.get("rate") != str(SAMPLE_RATE):
        raise BadSegment("wrong_sample_rate", f"content-type {content_type!r} declares rate "
                         f"{values.get('rate')!r}; segments must be rate={SAMPLE_RATE}")
    if values.get("channels", "1") != "1":
        raise BadSegment("wrong_encoding",
                         f"content-type {content_type!r}: {values['channels']} channels, not 1")


def _check_audio(metadata: Mapping[str, Any], n_bytes: int) -> None:
    if n_bytes == 0:
        raise BadSegment("empty_audio", "the record has no audio (zero-length value)")
    if n_bytes % BYTES_PER_SAMPLE:
        raise BadSegment("odd_byte_count", f"{n_bytes} bytes of audio is not a whole number of "
                         f"{BYTES_PER_SAMPLE}-byte samples")
    audio_s = n_bytes / (BYTES_PER_SAMPLE * SAMPLE_RATE)
    start, end = float(metadata["start_offset_s"]), float(metadata["end_offset_s"])
    declared = end - start
    if declared < 0:
        raise BadSegment("absurd_duration", f"end_offset_s {end} is before start_offset_s "
                         f"{start}")
    if declared > MAX_SEGMENT_S or audio_s > MAX_SEGMENT_S:
        raise BadSegment("absurd_duration",
                         f"declared {declared:.3f} s (offsets {start}..{end}), audio "
                         f"{audio_s:.3f} s; at most {MAX_SEGMENT_S:.0f} s accepted")
    if float(metadata["end_time"]) < float(metadata["start_time"]):
        raise BadSegment("absurd_duration", f"end_time {metadata['end_time']} is before "
                         f"start_time {metadata['start_time']}")
    if abs(declared - audio_s) > DURATION_TOLERANCE_S:
        raise BadSegment("duration_mismatch",
                         f"offsets {start}..{end} declare {declared:.3f} s but the audio is "
                         f"{audio_s:.3f} s (tolerance {DURATION_TOLERANCE_S} s)")


def _swap_s16(pcm: bytes) -> bytes:
    """16-bit samples from one byte order to the other (s16le <-> L16's big-endian)."""
    swapped = bytearray(len(pcm))
    swapped[0::2] = pcm[1::2]
    swapped[1::2] = pcm[0::2]
    return bytes(swapped)


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
