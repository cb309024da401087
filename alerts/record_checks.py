"""Strict reading of RoomWarden records, shared by every decoder that a worker trusts.

Each decoder (:mod:`alerts.transcript_decode`, :mod:`alerts.audit_records`,
:mod:`alerts.segment_record`, :mod:`alerts.evidence_record`) raises its own error type with its
own stable ``reason`` labels -- they are dead-letter headers and metric labels, so they stay
per stream. What the decoders share is the order and the wording of the checks; they pass a
``reject(label, detail)`` factory that builds their own error, and this module raises it.

JSON events (:func:`decode_checked`): a binary-mode JSON CloudEvent, of the expected type, its
attributes valid against ``cloudevent.v1.json``, no NaN/infinity anywhere in the data, the data
valid against the event's schema. Audio events (:func:`read_audio_envelope`): the CloudEvents
headers of the expected type and a JSON metadata header (segment, evidence), whose numbers
must be finite (:func:`check_top_level_finite`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from alerts.envelope import EnvelopeError, decode_record
from alerts.schemas import EventSpec, EventValidationError, validate, validate_attributes

__all__ = [
    "DecodeStep",
    "Reject",
    "check_finite",
    "check_top_level_finite",
    "decode_checked",
    "metadata_header_value",
    "read_audio_envelope",
    "unix_time",
]

DecodeStep = Literal[
    "not_a_cloudevent",  # not a binary-mode JSON CloudEvent (no ce_id, not JSON, ...)
    "wrong_type",        # a CloudEvent of another type than the one expected
    "bad_attributes",    # ce_* headers against cloudevent.v1.json
    "non_finite",        # NaN or infinity in a number
    "bad_data",          # the value (or metadata header) against the event's schema
]
"""The check that failed, passed to :data:`Reject`; a decoder maps it to its own label."""

Reject = Callable[[DecodeStep, str], Exception]
"""Builds a decoder's own error from the failed check and a detail naming field and value."""


def decode_checked(
    pairs: Iterable[tuple[str, bytes]],
    value: bytes | None,
    spec: EventSpec,
    *,
    reject: Reject,
    expected: str,
) -> tuple[dict[str, str], dict[str, Any]]:
    """A binary-mode JSON CloudEvent of ``spec``, checked: ``(attributes, data)``.

    Args:
        pairs: the record's headers.
        value: the record's value (UTF-8 JSON).
        spec: the event type expected.
        reject: builds the error to raise (see :data:`DecodeStep` for the steps).
        expected: says what was expected after a wrong ``ce_type``, e.g. ``a transcript is a
            io.roomwarden.transcript.v1 CloudEvent``.

    Raises:
        Exception: ``reject(step, detail)`` for the first check that fails, in the order of
            :data:`DecodeStep`.
    """
    try:
        attributes, data = decode_record(pairs, value if value is not None else b"")
    except (EnvelopeError, UnicodeDecodeError) as exc:
        raise reject("not_a_cloudevent", str(exc)) from exc
    if attributes["type"] != spec.type:
        raise reject("wrong_type", f"ce_type {attributes['type']!r}; {expected}")
    try:
        validate_attributes(attributes)
    except (EventValidationError, KeyError) as exc:
        raise reject("bad_attributes", str(exc)) from exc
    check_finite(data, reject)
    try:
        validate(spec.name, data)
    except EventValidationError as exc:
        raise reject("bad_data", str(exc)) from exc
    return attributes, data


def check_finite(value: Any, reject: Reject, path: str = "") -> None:
    """Refuse NaN and infinity anywhere in parsed JSON, naming the path (``speech/end_offset_s``).

    Python's json reads NaN and Infinity; they slip past ``minimum``/``maximum`` and have no
    canonical JSON, so they are refused by name rather than as an anonymous schema error."""
    if isinstance(value, float) and not math.isfinite(value):
        raise reject("non_finite", f"{path or '<root>'} is {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            check_finite(v, reject, f"{path}/{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_finite(v, reject, f"{path}/{i}")


def unix_time(rfc3339: str) -> float:
    """An RFC 3339 time (already format-checked by the schema) as Unix seconds."""
    return datetime.fromisoformat(rfc3339.upper().replace("Z", "+00:00")).timestamp()


def metadata_header_value(metadata: Mapping[str, Any]) -> bytes:
    """An audio record's metadata as its header value: compact UTF-8 JSON, no NaN."""
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def read_audio_envelope(
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes],
    spec: EventSpec,
    *,
    metadata_header: str,
    text: Callable[[bytes | None], str | None],
    reject: Reject,
    expected: str,
) -> tuple[dict[str, bytes], str, dict[str, Any]]:
    """The headers of an audio record of ``spec``: ``(headers by lower-case name, ce_id,
    metadata)``, the metadata a JSON object (not yet checked: the decoder does that, with
    :func:`check_top_level_finite` first).

    Args:
        headers: the record's headers (aiokafka's ``((name, bytes), ...)`` or a mapping).
        spec: the event type expected.
        metadata_header: the name of the JSON metadata header.
        text: how the decoder reads a header's bytes (None: absent or unreadable).
        reject: builds the error to raise: ``wrong_type`` (not a ``spec`` CloudEvent),
            ``not_a_cloudevent`` (no ``ce_id``, or ``ce_specversion`` not 1.0), ``bad_data``
            (metadata header missing, not JSON, not an object).
        expected: says what was expected after a wrong ``ce_type``.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found = {name.lower(): bytes(raw) for name, raw in pairs}
    event_type = text(found.get("ce_type"))
    if event_type != spec.type:
        what = f"ce_type {event_type!r}" if event_type else "no ce_type header"
        raise reject("wrong_type", f"{what}; {expected}")
    event_id = text(found.get("ce_id"))
    if not event_id or text(found.get("ce_specversion")) != "1.0":
        raise reject("not_a_cloudevent", "ce_id missing or ce_specversion is not 1.0")
    raw = found.get(metadata_header)
    if raw is None:
        raise reject("bad_data", f"no {metadata_header} header")
    try:
        # Python's json reads NaN/Infinity (and 1e999 as infinity): named just below rather
        # than as an anonymous parse error.
        metadata = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise reject("bad_data", f"{metadata_header} header is not JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise reject("bad_data", f"{metadata_header} header is not a JSON object: {raw[:80]!r}")
    return found, event_id, metadata


def check_top_level_finite(metadata: Mapping[str, Any], reject: Reject) -> None:
    """Refuse NaN and infinity in an audio record's (flat) metadata, naming the field."""
    for name, v in metadata.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise reject("non_finite", f"{name} is {v}")
