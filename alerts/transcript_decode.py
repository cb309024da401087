"""Transcript records read back into :class:`asr.frames.Transcript`, for policy running as a
separate consumer (``worker policy``).

The inverse of :func:`alerts.envelope.transcript_record`, and as strict as
:func:`alerts.segment_record.decode_segment`: a worker must judge only what an ASR stage really
said, so every way a record can be wrong raises :class:`BadTranscript` with a stable ``reason``
(the dead-letter topic's ``roomwarden-dlq-reason`` header, a metric label) and a ``detail``
naming the field and the value.

A transcript record carries what policy and the alert event need (ids, room, speaker, text,
words, confidence, model, the speech's offsets and times), not the audio. So the decoded
transcript's ``segment`` has no ``pcm`` (its ``duration_s`` is 0: use ``end_offset_s -
start_offset_s``), ``seq`` 0, ``stream_id`` "" and ``forced_split`` False; Whisper's own
quality signals (``no_speech_prob``, ``avg_logprob``, ``compression_ratio``) are 0 and
``batch_size`` 1 -- they already did their work in the guards, whose verdict travels as
``confidence_class`` and ``guard_reasons``. ``language`` ``und`` comes back as "".

End of speech: the ``roomwarden-speech-ended-at`` header (Unix time, set by ``worker asr``
from the segment record's ``speech_ended_at``) when present, else the speech's ``end_time``
(the segment's end, which includes VAD's trailing hangover, so latency measured from it reads
up to ``vad.hangover_ms`` short). Either is mapped onto this process's ``time.monotonic()``
as ``segment.end_monotonic``, so end-to-end latency stays measurable across the hops.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Literal

from alerts.envelope import UNDETERMINED_LANGUAGE, KafkaRecord
from alerts.record_checks import DecodeStep, decode_checked, unix_time
from alerts.schemas import TRANSCRIPT
from asr.frames import Transcript, Word
from ingest.frames import SpeechSegment

__all__ = [
    "SPEECH_ENDED_AT_HEADER",
    "BadTranscript",
    "BadTranscriptReason",
    "decode_transcript",
    "with_speech_ended_at",
]

SPEECH_ENDED_AT_HEADER = "roomwarden-speech-ended-at"
"""Optional header of a transcript record: Unix time the last voiced frame arrived (decimal)."""

BadTranscriptReason = Literal[
    "not_a_transcript",  # not a binary-mode JSON CloudEvent of type io.roomwarden.transcript.v1
    "bad_attributes",    # ce_* headers against cloudevent.v1.json (time, dataschema, source)
    "non_finite",        # NaN or infinity in a number (JSON has neither; careless producers do)
    "bad_data",          # the value against transcript.v1.json
    "inconsistent",      # valid fields that contradict each other (ids, times, offsets)
]

_REASONS: dict[DecodeStep, BadTranscriptReason] = {
    "not_a_cloudevent": "not_a_transcript",
    "wrong_type": "not_a_transcript",
    "bad_attributes": "bad_attributes",
    "non_finite": "non_finite",
    "bad_data": "bad_data",
}


class BadTranscript(ValueError):
    """A record is not a usable transcript.

    Attributes:
        reason: stable label (:data:`BadTranscriptReason`).
        detail: what exactly is wrong, naming the field and the value.
    """

    def __init__(self, reason: BadTranscriptReason, detail: str) -> None:
        self.reason: BadTranscriptReason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def with_speech_ended_at(record: KafkaRecord, speech_ended_at: float) -> KafkaRecord:
    """``record`` with the :data:`SPEECH_ENDED_AT_HEADER` header (millisecond precision)."""
    return KafkaRecord(record.topic, record.key,
                       [*record.headers, (SPEECH_ENDED_AT_HEADER,
                                          f"{speech_ended_at:.3f}".encode("ascii"))],
                       record.value)


def decode_transcript(
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes],
    value: bytes | None,
) -> Transcript:
    """Read a transcript record back, checking everything policy and the alert rely on.

    Args:
        headers: the record's headers (aiokafka's ``((name, bytes), ...)`` or a mapping).
        value: the record's value (UTF-8 JSON).

    Raises:
        BadTranscript: with the first problem found, checked in this order: not a JSON
            CloudEvent or not a transcript (``not_a_transcript``); the attributes
            (``bad_attributes``); NaN/infinity (``non_finite``); the schema (``bad_data``);
            ``ce_id`` vs ``transcript_id``, times and offsets that contradict each other,
            an unreadable speech-ended-at header (``inconsistent``).
    """
    pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    attributes, data = decode_checked(
        pairs, value, TRANSCRIPT, reject=_reject,
        expected=f"a transcript is a {TRANSCRIPT.type} CloudEvent")
    if attributes["id"] != data["transcript_id"]:
        raise BadTranscript("inconsistent", f"ce_id {attributes['id']!r} is not the "
                            f"transcript_id {data['transcript_id']!r}")
    speech = data["speech"]
    start_offset, end_offset = float(speech["start_offset_s"]), float(speech["end_offset_s"])
    start_time, end_time = unix_time(speech["start_time"]), unix_time(speech["end_time"])
    if end_offset < start_offset:
        raise BadTranscript("inconsistent", f"speech.end_offset_s {end_offset} is before "
                            f"speech.start_offset_s {start_offset}")
    if end_time < start_time:
        raise BadTranscript("inconsistent", f"speech.end_time {speech['end_time']} is before "
                            f"speech.start_time {speech['start_time']}")
    for i, w in enumerate(data["words"]):
        if w["end_offset_s"] < w["start_offset_s"]:
            raise BadTranscript("inconsistent", f"words[{i}] ({w['text']!r}) ends at "
                                f"{w['end_offset_s']} before it starts at {w['start_offset_s']}")
    speech_ended_at = _speech_ended_at(pairs, default=end_time)
    segment = SpeechSegment(
        room_id=data["room_id"],
        speaker_id=data["speaker_id"],
        segment_id=data["segment_id"],
        seq=0,
        pcm=b"",
        start_offset_s=start_offset,
        end_offset_s=end_offset,
        start_time=start_time,
        end_time=end_time,
        end_monotonic=time.monotonic() - (time.time() - speech_ended_at),
        speaker_name=data["speaker_name"],
    )
    language = data["language"]
    return Transcript(
        segment=segment,
        transcript_id=data["transcript_id"],
        text=data["text"],
        language="" if language == UNDETERMINED_LANGUAGE else language,
        words=tuple(Word(w["text"], float(w["start_offset_s"]), float(w["end_offset_s"]),
                         float(w["probability"])) for w in data["words"]),
        confidence=float(data["confidence"]),
        confidence_class=data["confidence_class"],
        model_id=data["model_id"],
        asr_seconds=float(data["timings"]["asr_seconds"]),
        queued_seconds=float(data["timings"]["queued_seconds"]),
        guard_reasons=tuple(data["guard_reasons"]),
    )


def _reject(step: DecodeStep, detail: str) -> BadTranscript:
    return BadTranscript(_REASONS[step], detail)


def _speech_ended_at(pairs: list[tuple[str, bytes]], *, default: float) -> float:
    raw = None
    for name, v in pairs:
        if name.lower() == SPEECH_ENDED_AT_HEADER:
            raw = bytes(v)
    if raw is None:
        return default
    try:
        value = float(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadTranscript("inconsistent", f"{SPEECH_ENDED_AT_HEADER} header {raw[:40]!r} is "
                            "not a Unix time") from exc
    if not math.isfinite(value) or value < 0:
        raise BadTranscript("inconsistent", f"{SPEECH_ENDED_AT_HEADER} header is {value}")
    return value
