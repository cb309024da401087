"""What a host warning is, and the thin JSON body it is sent as.

Thin on purpose (Standard Webhooks' "thin payload"): the alert id, room, category, severity,
suggested action and a link to the console -- never the transcript or the matched words. The
host follows the link to see more, which keeps every read of moderation data behind the
console's login and in its audit trail. Schema: ``alerts/schemas/host_warning.v1.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from alerts.webhooks.signing import check_webhook_id

EVENT_TYPE = "roomwarden.host_warning"
"""The payload's ``type`` (Standard Webhooks: full-stop delimited, ``[a-zA-Z0-9_]`` parts)."""
SEVERITIES = ("low", "medium", "high", "critical")
MAX_BODY_BYTES = 20_000
"""Standard Webhooks' advice for payload size; a thin warning is far below it."""


@dataclass(frozen=True, slots=True)
class HostWarning:
    """A warning to a room's host, decided by the escalation ladder (``host_warning`` rung).

    Attributes:
        webhook_id: the delivery's identity, sent as ``webhook-id`` on every attempt: the
            escalation id, deterministic, so a replayed escalation is the same warning and is
            not sent twice.
        room_id: the room (chooses the host endpoint).
        alert_id: the alert that triggered the warning (the console link points at it).
        category: the alert's category, e.g. ``harassment``.
        severity: ``low`` / ``medium`` / ``high`` / ``critical``.
        suggestion: the pack's suggested action, e.g. ``warn``.
        occurred_at: speech time of the alert, Unix seconds (the payload's ``timestamp``).
    """

    webhook_id: str
    room_id: str
    alert_id: str
    category: str
    severity: str
    suggestion: str
    occurred_at: float

    def __post_init__(self) -> None:
        check_webhook_id(self.webhook_id)
        for name in ("room_id", "alert_id", "category", "severity", "suggestion"):
            if not getattr(self, name):
                raise ValueError(f"HostWarning.{name} is empty ({self.webhook_id})")
        if self.severity not in SEVERITIES:
            raise ValueError(f"HostWarning.severity {self.severity!r} is not one of "
                             f"{', '.join(SEVERITIES)} ({self.webhook_id})")
        if not math.isfinite(self.occurred_at) or self.occurred_at < 0:
            raise ValueError(f"HostWarning.occurred_at must be Unix seconds, "
                             f"not {self.occurred_at!r} ({self.webhook_id})")


def rfc3339(unix_s: float) -> str:
    """``2025-11-21T20:00:01.250000Z``: UTC, microseconds, ``Z``."""
    return datetime.fromtimestamp(unix_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alert_link(console_base_url: str, alert_id: str) -> str:
    """``<console>/alerts/<alert id>`` (the id percent-encoded as one path segment)."""
    return f"{console_base_url.rstrip('/')}/alerts/{quote(alert_id, safe='')}"


def thin_body(warning: HostWarning, console_base_url: str) -> bytes:
    """The exact bytes sent (and signed): compact UTF-8 JSON, keys in a fixed order.

    Built once, when the warning is accepted, and stored in the outbox: every retry sends the
    same bytes, so the body's signature never depends on re-serialising.
    """
    body = json.dumps({
        "type": EVENT_TYPE,
        "timestamp": rfc3339(warning.occurred_at),
        "data": {
            "alert_id": warning.alert_id,
            "room_id": warning.room_id,
            "category": warning.category,
            "severity": warning.severity,
            "suggestion": warning.suggestion,
            "link": alert_link(console_base_url, warning.alert_id),
        },
    }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"host warning {warning.webhook_id} body is {len(body)} bytes, over "
                         f"{MAX_BODY_BYTES}: one of its fields is far too long")
    return body
