"""Evidence audio as Kafka records: the speech an alert was raised on, for the audit log.

When a transcript raises alerts, the pipeline publishes the segment's audio once, so the audit
recorder (``roomwarden worker audit``) can keep it beside the alerts as evidence. One record per
flagged :class:`ingest.frames.SpeechSegment`, a CloudEvent in binary content mode::

    topic    roomwarden.evidence.v1
    key      b"room-42"                       (one room's records stay in order)
    headers  ce_specversion=1.0  ce_id=<segment_id>  ce_source=/roomwarden/<instance>
             ce_type=io.roomwarden.evidence.v1  ce_time=<end of the segment, RFC 3339>
             ce_subject=rooms/room-42  ce_dataschema=urn:roomwarden:schema:evidence.v1
             ce_partitionkey=room-42  content-type=audio/wav
             roomwarden-evidence={"segment_id": ..., "alert_ids": [...], "sha256": ..., ...}
    value    a WAV file: RIFF, 16 kHz mono signed 16-bit PCM

Why WAV and not raw L16 like :mod:`alerts.segment_record`: evidence is kept and handed to
people (an operator's player, an auditor's export), and a WAV file plays anywhere as it is;
the 44-byte header is nothing next to the audio. The metadata header (schema
``alerts/schemas/evidence.v1.json``) is exactly the ``data`` of the audit log's ``evidence``
entry, and names the WAV's sha256, so the audio can be checked wherever it ends up.

The CloudEvents id is the segment id: the same speech is the same evidence, so a re-sent
record (a replay, a re-processed batch) dedupes in the audit log by ``(evidence, segment_id)``.

Size: a record must fit Kafka's default 1 MB message, so evidence is capped at
:data:`MAX_EVIDENCE_BYTES` of WAV (31 s of audio; VAD splits speech at 15 s by default).
:func:`evidence_record` raises :class:`BadEvidence` (``too_large``) past it rather than cut the
speech: a clipped clip is not the evidence.

:func:`decode_evidence` is strict, as :func:`alerts.segment_record.decode_segment` is: every way
a record can be wrong raises :class:`BadEvidence` with a stable ``reason`` (the dead-letter
topic's ``roomwarden-dlq-reason`` header, a metric label) and a ``detail`` naming the field and
the value.
"""

from __future__ import annotations

import hashlib
import io
import wave
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from alerts.envelope import KafkaRecord, cloudevent_record
from alerts.record_checks import (
    DecodeStep,
    check_top_level_finite,
    metadata_header_value,
    read_audio_envelope,
)
from alerts.schemas import EVIDENCE, EventValidationError, validate
from alerts.segment_record import DURATION_TOLERANCE_S
from ingest.frames import BYTES_PER_SAMPLE, SAMPLE_RATE, SpeechSegment

__all__ = [
    "EVIDENCE_CONTENT_TYPE",
    "EVIDENCE_TOPIC",
    "MAX_EVIDENCE_BYTES",
    "METADATA_HEADER",
    "BadEvidence",
    "BadEvidenceReason",
    "Evidence",
    "decode_evidence",
    "evidence_metadata",
    "evidence_record",
    "wav_bytes",
]

EVIDENCE_TOPIC = "roomwarden.evidence.v1"
EVIDENCE_CONTENT_TYPE = "audio/wav"
METADATA_HEADER = "roomwarden-evidence"
"""Header carrying the evidence's metadata (JSON, schema ``evidence.v1.json``)."""
MAX_EVIDENCE_BYTES = 1_000_000
"""Largest WAV carried (about 31 s at 16 kHz mono s16): the record, headers included, must fit
Kafka's default 1 MiB message size (``max_request_size`` / ``message.max.bytes``)."""

BadEvidenceReason = Literal[
    "not_evidence",       # not a binary-mode CloudEvent of type io.roomwarden.evidence.v1
    "bad_metadata",       # roomwarden-evidence header missing, not JSON, or against the schema
    "non_finite",         # NaN or infinity in a declared number
    "wrong_encoding",     # content type is not audio/wav, or the WAV is not mono 16-bit PCM
    "wrong_sample_rate",  # the WAV is not 16000 Hz
    "empty_audio",        # zero bytes of value, or a WAV without samples
    "bad_wav",            # not a readable RIFF/WAVE file, or truncated
    "checksum_mismatch",  # the value's sha256 is not the declared one
    "duration_mismatch",  # declared duration/offsets disagree with the WAV's length
    "inconsistent",       # ce_id is not the segment_id; the segment ends before it starts
    "too_large",          # over MAX_EVIDENCE_BYTES (encoding side)
]
_REASONS: dict[DecodeStep, BadEvidenceReason] = {
    "not_a_cloudevent": "not_evidence",
    "wrong_type": "not_evidence",
    "bad_attributes": "not_evidence",  # (JSON events only: an audio record has no such step)
    "non_finite": "non_finite",
    "bad_data": "bad_metadata",
}


class BadEvidence(ValueError):
    """A record (or a segment about to become one) is not usable evidence.

    Attributes:
        reason: stable label (:data:`BadEvidenceReason`).
        detail: what exactly is wrong, naming the field and the value.
    """

    def __init__(self, reason: BadEvidenceReason, detail: str) -> None:
        self.reason: BadEvidenceReason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True, slots=True)
class Evidence:
    """A decoded evidence record.

    Attributes:
        metadata: the ``roomwarden-evidence`` header, schema-valid: the audit entry's ``data``.
        wav: the WAV file, exactly as carried (its sha256 is ``metadata["sha256"]``).
    """

    metadata: Mapping[str, Any]
    wav: bytes

    @property
    def segment_id(self) -> str:
        return str(self.metadata["segment_id"])

    @property
    def room_id(self) -> str:
        return str(self.metadata["room_id"])

    @property
    def end(self) -> float:
        """Unix time the speech ended (the audit entry's ``occurred_at``)."""
        return float(self.metadata["end"])


def wav_bytes(pcm: bytes) -> bytes:
    """16 kHz mono s16le PCM as a WAV file (stdlib :mod:`wave`)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(BYTES_PER_SAMPLE)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm)
    return buffer.getvalue()


def evidence_metadata(segment: SpeechSegment, *, alert_ids: Collection[str],
                      sha256: str) -> dict[str, Any]:
    """The metadata of an evidence record (schema ``alerts/schemas/evidence.v1.json``)."""
    return {
        "segment_id": segment.segment_id,
        "room_id": segment.room_id,
        "speaker_id": segment.speaker_id,
        "speaker_name": segment.speaker_name,
        "stream_id": segment.stream_id,
        "alert_ids": list(dict.fromkeys(alert_ids)),  # once each, in the order raised
        "start": segment.start_time,
        "end": segment.end_time,
        "start_offset_s": segment.start_offset_s,
        "end_offset_s": segment.end_offset_s,
        "duration_s": round(segment.duration_s, 6),
        "sample_rate": SAMPLE_RATE,
        "channels": 1,
        "format": "wav",
        "sha256": sha256,
    }


def evidence_record(
    segment: SpeechSegment,
    *,
    alert_ids: Collection[str],
    source: str,
    topic: str = EVIDENCE_TOPIC,
) -> KafkaRecord:
    """The audio of a flagged segment as a CloudEvents binary-mode Kafka record.

    Args:
        segment: the speech the alerts were raised on (16 kHz mono s16le, as every segment is).
        alert_ids: the ids of those alerts (at least one).
        source: CloudEvents ``source``, e.g. ``/roomwarden/<instance>``.
        topic: destination topic.

    Raises:
        BadEvidence: no audio (``empty_audio``), no alert ids or metadata against the schema
            (``bad_metadata``), NaN/infinity (``non_finite``), over :data:`MAX_EVIDENCE_BYTES`
            (``too_large``) -- a producer learns at once, not through the dead-letter topic.
    """
    if not segment.pcm:
        raise BadEvidence("empty_audio", f"segment {segment.segment_id} has no audio")
    wav = wav_bytes(segment.pcm)
    if len(wav) > MAX_EVIDENCE_BYTES:
        raise BadEvidence("too_large", f"segment {segment.segment_id}: {segment.duration_s:.1f} s "
                          f"of audio is a {len(wav)}-byte WAV, over {MAX_EVIDENCE_BYTES} bytes")
    metadata = evidence_metadata(segment, alert_ids=alert_ids,
                                 sha256=hashlib.sha256(wav).hexdigest())
    _check_metadata(metadata)
    return cloudevent_record(
        EVIDENCE, topic=topic, event_id=segment.segment_id, source=source,
        room_id=segment.room_id, time=datetime.fromtimestamp(segment.end_time, tz=UTC),
        content_type=EVIDENCE_CONTENT_TYPE, value=wav,
        extra_headers=[(METADATA_HEADER, metadata_header_value(metadata))])


def decode_evidence(
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes],
    value: bytes | None,
) -> Evidence:
    """Read an evidence record back, checking everything the audit log relies on.

    Args:
        headers: the record's headers (aiokafka's ``((name, bytes), ...)`` or a mapping).
        value: the record's value (the WAV file).

    Raises:
        BadEvidence: with the first problem found, in this order: not an evidence event or no
            ``ce_id`` (``not_evidence``); metadata header missing, not a JSON object or against
            the schema (``bad_metadata``, ``non_finite``); ``ce_id`` is not the segment id, or
            the segment ends before it starts (``inconsistent``); content type
            (``wrong_encoding``); the value: empty (``empty_audio``), sha256
            (``checksum_mismatch``), not a WAV (``bad_wav``), its format (``wrong_encoding``,
            ``wrong_sample_rate``), its length (``empty_audio``, ``duration_mismatch``).
    """
    found, event_id, metadata = read_audio_envelope(
        headers, EVIDENCE, metadata_header=METADATA_HEADER, text=_text, reject=_reject,
        expected=f"evidence is an {EVIDENCE.type} CloudEvent")
    _check_metadata(metadata)
    if event_id != metadata["segment_id"]:
        raise BadEvidence("inconsistent", f"ce_id {event_id!r} is not the segment_id "
                          f"{metadata['segment_id']!r}")
    content_type = _text(found.get("content-type")) or ""
    if content_type.split(";")[0].strip().lower() not in ("audio/wav", "audio/x-wav",
                                                          "audio/wave"):
        raise BadEvidence("wrong_encoding",
                          f"content-type {content_type!r}; expected {EVIDENCE_CONTENT_TYPE}")
    wav = bytes(value or b"")
    if not wav:
        raise BadEvidence("empty_audio", "the record has no audio (zero-length value)")
    if hashlib.sha256(wav).hexdigest() != metadata["sha256"]:
        raise BadEvidence("checksum_mismatch", f"the {len(wav)}-byte value's sha256 is not the "
                          f"declared {metadata['sha256']}")
    _check_wav(metadata, wav)
    return Evidence(metadata=metadata, wav=wav)


# --- checks ------------------------------------------------------------------------------


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def _reject(step: DecodeStep, detail: str) -> BadEvidence:
    return BadEvidence(_REASONS[step], detail)


def _check_metadata(metadata: Mapping[str, Any]) -> None:
    check_top_level_finite(metadata, _reject)
    try:
        validate(EVIDENCE.name, metadata)
    except EventValidationError as exc:
        raise BadEvidence("bad_metadata", "; ".join(exc.errors)) from exc
    if metadata["end"] < metadata["start"] or (
            metadata["end_offset_s"] < metadata["start_offset_s"]):
        raise BadEvidence("inconsistent", f"the speech ends (end {metadata['end']}, "
                          f"end_offset_s {metadata['end_offset_s']}) before it starts (start "
                          f"{metadata['start']}, start_offset_s {metadata['start_offset_s']})")


def _check_wav(metadata: Mapping[str, Any], wav: bytes) -> None:
    try:
        with wave.open(io.BytesIO(wav), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            n_frames = w.getnframes()
            frames = w.readframes(n_frames)
    except (wave.Error, EOFError) as exc:
        raise BadEvidence("bad_wav", f"the value is not a readable WAV file: {exc}") from exc
    if channels != 1 or width != BYTES_PER_SAMPLE:
        raise BadEvidence("wrong_encoding", f"WAV of {channels} channel(s), {8 * width}-bit "
                          f"samples; evidence is mono 16-bit PCM")
    if rate != SAMPLE_RATE:
        raise BadEvidence("wrong_sample_rate",
                          f"WAV at {rate} Hz; evidence must be {SAMPLE_RATE} Hz")
    if len(frames) != n_frames * BYTES_PER_SAMPLE:
        raise BadEvidence("bad_wav", f"WAV declares {n_frames} samples but holds "
                          f"{len(frames) // BYTES_PER_SAMPLE} (truncated)")
    if n_frames == 0:
        raise BadEvidence("empty_audio", "the WAV holds no samples")
    audio_s = n_frames / SAMPLE_RATE
    declared = {
        "duration_s": float(metadata["duration_s"]),
        "end_offset_s - start_offset_s": metadata["end_offset_s"] - metadata["start_offset_s"],
    }
    for what, seconds in declared.items():
        if abs(seconds - audio_s) > DURATION_TOLERANCE_S:
            raise BadEvidence("duration_mismatch", f"{what} is {seconds:.3f} s but the WAV "
                              f"holds {audio_s:.3f} s")
