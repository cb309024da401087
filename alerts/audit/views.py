"""Human-readable views of exported records: CSV (a spreadsheet) and WebVTT (a caption track).

A view is *derived*: ``records.jsonl`` is the verifiable core, and ``verify`` re-renders the
view from the verified records and compares it byte for byte, naming the first row (CSV) or
cue (VTT) that differs. So a view is exactly as trustworthy as the records -- no field of it is
taken on faith -- while staying readable in a spreadsheet or a player.

CSV: one row per record (header first), RFC 4180 quoting, ``\\n`` line ends, UTF-8; times in
RFC 3339 UTC; the columns most people look for (speaker, text, category, severity, rule,
action, reason) picked out of the event data, plus ``entry_hash`` to tie a row to its record.

VTT: one cue per transcript/alert/gap/escalation/review/evidence record, identified by its seq,
timed from the speech (``data.speech.start_time``/``end_time`` where the event has them, else
the second before ``occurred_at``) relative to the earliest record, in start-time order; the
voice tag names the speaker. ``NOTE`` blocks give the room and the wall-clock origin.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from alerts.audit.entries import StoredEntry

__all__ = ["CSV_COLUMNS", "VIEW_FILES", "render_csv", "render_view", "render_vtt", "rfc3339"]

CSV_COLUMNS = ("seq", "kind", "event_id", "occurred_at", "recorded_at", "speaker_id",
               "speaker_name", "text", "category", "severity", "rule_id", "action", "reason",
               "blob_sha256", "entry_hash")
VIEW_FILES = {"csv": "records.csv", "vtt": "records.vtt"}
"""Export format -> view file name (``jsonl`` has no view: the records file is the export)."""


def rfc3339(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _row(entry: StoredEntry) -> list[str]:
    data = entry.data
    return [str(entry.seq), entry.kind, entry.event_id, rfc3339(entry.occurred_at),
            rfc3339(entry.recorded_at), _text(data.get("speaker_id")),
            _text(data.get("speaker_name")), _text(data.get("text")),
            _text(data.get("category")), _text(data.get("severity")),
            _text(data.get("rule_id")), _text(data.get("action")), _text(data.get("reason")),
            entry.blob_sha256 or "", entry.entry_hash]


def render_csv(entries: Sequence[StoredEntry]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_row(entry) for entry in entries)
    return out.getvalue().encode("utf-8")


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _span(entry: StoredEntry) -> tuple[float, float]:
    speech = entry.data.get("speech")
    start = end = None
    if isinstance(speech, dict):
        start, end = _parse_time(speech.get("start_time")), _parse_time(speech.get("end_time"))
    if start is None or end is None or end < start:
        end = entry.occurred_at
        start = end - 1.0
    return start, max(end, start + 0.001)


def _timestamp(offset_s: float) -> str:
    millis = max(0, round(offset_s * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _escape(text: str) -> str:
    # Cue text: no blank line (it would end the cue), no "-->", entities escaped.
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cue_text(entry: StoredEntry) -> str:
    data = entry.data
    speaker = _escape(_text(data.get("speaker_name")) or _text(data.get("speaker_id")))
    label: str = entry.kind
    if entry.kind == "alert":
        label = f"alert {_text(data.get('severity'))} {_text(data.get('category'))}".strip()
    elif entry.kind == "escalation":
        label = f"escalation {_text(data.get('action'))}".strip()
    elif entry.kind == "gap":
        label = f"gap {_text(data.get('reason'))}".strip()
    body = _escape(_text(data.get("text")) or _text(data.get("reason")))
    line = f"[{_escape(label)}] {body}".rstrip()
    return f"<v {speaker}>{line}" if speaker else line


def render_vtt(entries: Sequence[StoredEntry], room_id: str) -> bytes:
    spans = [(_span(entry), entry) for entry in entries]
    origin = min((start for (start, _), _ in spans), default=0.0)
    blocks = ["WEBVTT", f"NOTE room {_escape(room_id)}, 00:00:00.000 = {rfc3339(origin)}"]
    for (start, end), entry in sorted(spans, key=lambda item: (item[0][0], item[1].seq)):
        blocks.append(f"{entry.seq}\n{_timestamp(start - origin)} --> "
                      f"{_timestamp(end - origin)}\n{_cue_text(entry)}")
    return ("\n\n".join(blocks) + "\n").encode("utf-8")


def render_view(fmt: str, entries: Sequence[StoredEntry], room_id: str) -> bytes:
    if fmt == "csv":
        return render_csv(entries)
    if fmt == "vtt":
        return render_vtt(entries, room_id)
    raise ValueError(f"no view for format {fmt!r}")
