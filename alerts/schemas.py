"""The JSON Schemas of RoomWarden's events, and validation against them.

The schema files live in ``alerts/schemas/`` (package data) and are the published contract:
``alert.v1.json``, ``transcript.v1.json`` and ``gap.v1.json`` for the record values,
``escalation.v1.json`` for the decisions of the escalation ladder (``policy.escalation``),
``review.v1.json`` for an operator's decision on an alert (``alerts.console.reviews``),
``cloudevent.v1.json`` for the CloudEvents attributes carried in the ``ce_*`` headers of
those JSON events, and ``segment.v1.json`` for the metadata of a speech segment (its value is
audio, not JSON: :mod:`alerts.segment_record` checks a segment's attributes itself) and
``evidence.v1.json`` for the metadata of a flagged segment's audio kept for the audit log (a
WAV value: :mod:`alerts.evidence_record`). Each
file's ``$id`` is the ``dataschema`` URI its records carry. An incompatible change gets a new
file (``*.v2.json``), a new ``dataschema`` and a new event type, never an edit of a published
one.

Formats are enforced (``date-time`` as RFC 3339, ``uri``, ``uri-reference``, ``uuid``) with
checkers defined here, so validation does not depend on jsonschema's optional extras.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker

__all__ = [
    "ALERT",
    "ATTRIBUTES_SCHEMA_ID",
    "ESCALATION",
    "EVIDENCE",
    "GAP",
    "REVIEW",
    "SEGMENT",
    "TRANSCRIPT",
    "EventSpec",
    "EventValidationError",
    "event_spec",
    "schema",
    "validate",
    "validate_attributes",
]


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One kind of event: its CloudEvents ``type``, schema file and ``dataschema`` URI."""

    name: str
    type: str
    schema_file: str
    dataschema: str


ALERT = EventSpec(
    name="alert",
    type="io.roomwarden.moderation.alert.v1",
    schema_file="alert.v1.json",
    dataschema="urn:roomwarden:schema:alert.v1",
)
TRANSCRIPT = EventSpec(
    name="transcript",
    type="io.roomwarden.transcript.v1",
    schema_file="transcript.v1.json",
    dataschema="urn:roomwarden:schema:transcript.v1",
)
GAP = EventSpec(
    name="gap",
    type="io.roomwarden.gap.v1",
    schema_file="gap.v1.json",
    dataschema="urn:roomwarden:schema:gap.v1",
)
SEGMENT = EventSpec(
    name="segment",
    type="io.roomwarden.segment.v1",
    schema_file="segment.v1.json",
    dataschema="urn:roomwarden:schema:segment.v1",
)
ESCALATION = EventSpec(
    name="escalation",
    type="io.roomwarden.moderation.escalation.v1",
    schema_file="escalation.v1.json",
    dataschema="urn:roomwarden:schema:escalation.v1",
)
REVIEW = EventSpec(
    name="review",
    type="io.roomwarden.moderation.review.v1",
    schema_file="review.v1.json",
    dataschema="urn:roomwarden:schema:review.v1",
)
EVIDENCE = EventSpec(
    name="evidence",
    type="io.roomwarden.evidence.v1",
    schema_file="evidence.v1.json",
    dataschema="urn:roomwarden:schema:evidence.v1",
)
_EVENTS = (ALERT, TRANSCRIPT, GAP, SEGMENT, ESCALATION, REVIEW, EVIDENCE)
_ATTRIBUTES_FILE = "cloudevent.v1.json"
ATTRIBUTES_SCHEMA_ID = "urn:roomwarden:schema:cloudevent.v1"


class EventValidationError(ValueError):
    """An event does not match its schema. ``errors`` lists every violation found."""

    def __init__(self, what: str, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(f"{what} does not match its schema: " + "; ".join(errors))


def event_spec(event_type: str) -> EventSpec:
    """Look an event up by short name (``alert``), CloudEvents type or ``dataschema`` URI."""
    for spec in _EVENTS:
        if event_type in (spec.name, spec.type, spec.dataschema):
            return spec
    known = ", ".join(f"{s.name} ({s.type})" for s in _EVENTS)
    raise KeyError(f"unknown event type {event_type!r}; known: {known}")


def schema(event_type: str) -> dict[str, Any]:
    """The parsed JSON Schema of an event (a copy is not made: do not mutate it)."""
    return _load(event_spec(event_type).schema_file)


def validate(event_type: str, data: Mapping[str, Any]) -> None:
    """Check an event's data (the Kafka value, parsed) against its JSON Schema.

    Args:
        event_type: ``alert`` / ``transcript`` / ``gap``, or the CloudEvents type, or the
            dataschema URI.
        data: the parsed JSON value.

    Raises:
        EventValidationError: listing every violation (path and message).
        KeyError: unknown event type.
    """
    spec = event_spec(event_type)
    _check(_validator(spec.schema_file), data, spec.name)


def validate_attributes(attributes: Mapping[str, Any]) -> None:
    """Check decoded CloudEvents attributes (all strings, as in the headers) against
    ``cloudevent.v1.json``: required ``ce_*`` attributes present, known type, RFC 3339 time.
    Also checks that ``dataschema`` is the one of the event's ``type``."""
    _check(_validator(_ATTRIBUTES_FILE), attributes, "CloudEvents attributes")
    spec = event_spec(str(attributes["type"]))
    if attributes["dataschema"] != spec.dataschema:
        raise EventValidationError(
            "CloudEvents attributes",
            [f"dataschema: {attributes['dataschema']!r} is not {spec.dataschema!r} "
             f"(the schema of {spec.type})"],
        )


def _check(validator: Draft202012Validator, instance: Mapping[str, Any], what: str) -> None:
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        raise EventValidationError(
            what, [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                   for e in errors]
        )


@cache
def _load(filename: str) -> dict[str, Any]:
    text = resources.files(__package__).joinpath("schemas", filename).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator(filename: str) -> Draft202012Validator:
    document = _load(filename)
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document, format_checker=_FORMATS)


# --- format checkers (jsonschema checks date-time and uri only with optional extras) ---------

_FORMATS = FormatChecker(["uuid", "regex", "date", "email"])
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_URI_CHARS = re.compile(r"^[^\s<>\"{}|\\^`\x00-\x1f\x7f]*$")


@_FORMATS.checks("date-time")
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@_FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _URI_CHARS.match(value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme) and bool(_SCHEME.match(parts.scheme)) and len(value) > len(
        parts.scheme) + 1


@_FORMATS.checks("uri-reference")
def _is_uri_reference(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _URI_CHARS.match(value):
        return False
    try:
        urlsplit(value)
    except ValueError:
        return False
    return True
