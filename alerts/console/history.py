"""What the console reads from the audit store: the recent past, an alert's context, its clip.

The store (:mod:`alerts.audit`) is synchronous; every function here is called through
``asyncio.to_thread``. The console only needs the reading half of its API, written down as
:class:`AuditReader` so tests can hand in a small fake.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol

from alerts.console.risk import parse_time

__all__ = [
    "AuditReader",
    "StoredLike",
    "alert_context",
    "evidence_of",
    "recent_history",
]

HISTORY_KINDS = ("alert", "review", "escalation")
_SLACK_S = 30.0
"""How far beyond the window the store is asked (speech times vs ``occurred_at``: a 15 s segment
that ends inside the window started before it)."""


class StoredLike(Protocol):
    """The fields of :class:`alerts.audit.StoredEntry` the console reads."""

    @property
    def kind(self) -> str: ...

    @property
    def event_id(self) -> str: ...

    @property
    def occurred_at(self) -> float: ...

    @property
    def data(self) -> dict[str, Any]: ...

    @property
    def blob_sha256(self) -> str | None: ...


class AuditReader(Protocol):
    """The reading half of :class:`alerts.audit.AuditStore`."""

    def entries(self, room_id: str, *, since: float | None = None, until: float | None = None,
                kinds: Collection[str] | None = None, limit: int | None = None
                ) -> Iterable[StoredLike]: ...

    def find(self, kind: str, event_id: str) -> StoredLike | None: ...

    def blob(self, sha256: str) -> bytes | None: ...

    def rooms(self) -> list[str]: ...


def recent_history(store: AuditReader, since: float) -> list[StoredLike]:
    """Alerts, reviews and escalations of every room that occurred at or after ``since``,
    oldest first (one query per room)."""
    found: list[StoredLike] = []
    for room_id in store.rooms():
        found.extend(store.entries(room_id, since=since, kinds=HISTORY_KINDS))
    found.sort(key=lambda e: e.occurred_at)
    return found


def speech_window(alert: Mapping[str, Any]) -> tuple[float, float]:
    """``(start, end)`` of the alert's speech, Unix seconds."""
    speech = alert["speech"]
    return parse_time(speech["start_time"]), parse_time(speech["end_time"])


def alert_context(store: AuditReader | None, alert: Mapping[str, Any], window_s: float
                  ) -> list[dict[str, Any]]:
    """The room's conversation in the ``window_s`` before the alert's speech ended, in speech
    order: ``[{transcript_id, speaker_id, speaker_name, text, start_time, end_time,
    confidence_class, flagged, match}]``; ``match`` (``{start, end}`` into ``text``) is set on
    the flagged line. When the store lacks the flagged transcript, the alert's own text is the
    flagged line, so the detail always shows what was flagged."""
    _, anchor = speech_window(alert)
    flagged_ids = {alert["transcript_id"], *alert.get("transcript_ids", ())}
    lines: list[dict[str, Any]] = []
    if store is not None:
        for entry in store.entries(alert["room_id"], since=anchor - window_s - _SLACK_S,
                                   until=anchor + _SLACK_S, kinds=("transcript",)):
            line = _line(entry.data, anchor, window_s)
            if line is not None:
                lines.append(line)
    seen = {line["transcript_id"] for line in lines}
    if alert["transcript_id"] not in seen:
        start, end = speech_window(alert)
        lines.append({"transcript_id": alert["transcript_id"], "speaker_id": alert["speaker_id"],
                      "speaker_name": alert.get("speaker_name", ""), "text": alert["text"],
                      "start_time": start, "end_time": end,
                      "confidence_class": alert.get("confidence_class", "")})
    for line in lines:
        line["flagged"] = line["transcript_id"] in flagged_ids
        line["match"] = None
        if line["transcript_id"] == alert["transcript_id"] and line["text"] == alert["text"]:
            line["match"] = {"start": alert["match"]["start"], "end": alert["match"]["end"]}
    lines.sort(key=lambda line: (line["start_time"], line["end_time"]))
    return lines


def _line(data: Mapping[str, Any], anchor: float, window_s: float) -> dict[str, Any] | None:
    try:
        start = parse_time(data["speech"]["start_time"])
        end = parse_time(data["speech"]["end_time"])
        text = str(data["text"])
    except (KeyError, TypeError, ValueError):
        return None  # not a transcript the console can place: the store's business, not ours
    if not text or end < anchor - window_s or start > anchor:
        return None
    return {"transcript_id": str(data.get("transcript_id", "")),
            "speaker_id": str(data.get("speaker_id", "")),
            "speaker_name": str(data.get("speaker_name", "")), "text": text,
            "start_time": start, "end_time": end,
            "confidence_class": str(data.get("confidence_class", ""))}


def evidence_of(store: AuditReader, alert: Mapping[str, Any]) -> str | None:
    """The sha256 of the evidence clip of the alert's speech segment, or None.

    The evidence entry is the one of the alert's segment (``data.segment_id``), or one naming
    the alert in ``data.alert_ids``."""
    start, end = speech_window(alert)
    for entry in store.entries(alert["room_id"], since=start - _SLACK_S, until=end + _SLACK_S,
                               kinds=("evidence",)):
        data = entry.data
        if entry.blob_sha256 and (data.get("segment_id") == alert["segment_id"]
                                  or alert["alert_id"] in (data.get("alert_ids") or ())):
            return entry.blob_sha256
    return None
