"""Small fakes for the console tests: an in-memory audit store (the reading half of
``alerts.audit.AuditStore``), a publisher that acks on demand, and console alert builders."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from alerts.console.app import Console, make_console_app
from alerts.console.export_route import Exporter
from alerts.console.feed import AlertFeed
from alerts.console.reviews import ReviewDesk
from alerts.console.risk import RiskBoard
from alerts.console.settings import ConsoleSettings, ConsoleToken
from alerts.envelope import KafkaRecord, alert_data, transcript_data
from policy.frames import Alert
from tests.conftest import EVENT_T0, build_alert, build_segment, build_transcript

OPERATOR_TOKEN = "operator-token-0123456789"
AUDITOR_TOKEN = "auditor-token-0123456789abc"


def console_settings(**changes: Any) -> ConsoleSettings:
    tokens = [ConsoleToken(name="ana", role="operator", token=OPERATOR_TOKEN),  # type: ignore[arg-type]
              ConsoleToken(name="audit-office", role="auditor",
                           token_sha256=hashlib.sha256(AUDITOR_TOKEN.encode()).hexdigest())]
    return ConsoleSettings(tokens=tokens, **changes)


@dataclass(frozen=True, slots=True)
class FakeEntry:
    room_id: str
    kind: str
    event_id: str
    occurred_at: float
    data: dict[str, Any]
    blob_sha256: str | None = None


@dataclass
class FakeStore:
    entries_: list[FakeEntry] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def add(self, room_id: str, kind: str, event_id: str, occurred_at: float,
            data: dict[str, Any], blob: bytes | None = None) -> None:
        sha = None
        if blob is not None:
            sha = hashlib.sha256(blob).hexdigest()
            self.blobs[sha] = blob
        self.entries_.append(FakeEntry(room_id, kind, event_id, occurred_at, data, sha))

    def entries(self, room_id: str, *, since: float | None = None, until: float | None = None,
                kinds: Collection[str] | None = None, limit: int | None = None
                ) -> list[FakeEntry]:
        out = [e for e in self.entries_ if e.room_id == room_id
               and (since is None or e.occurred_at >= since)
               and (until is None or e.occurred_at <= until)
               and (kinds is None or e.kind in kinds)]
        return out[:limit] if limit else out

    def find(self, kind: str, event_id: str) -> FakeEntry | None:
        return next((e for e in self.entries_ if (e.kind, e.event_id) == (kind, event_id)), None)

    def blob(self, sha256: str) -> bytes | None:
        return self.blobs.get(sha256)

    def rooms(self) -> list[str]:
        return sorted({e.room_id for e in self.entries_})


class AckingSink:
    """A publisher that acks every record at once (or never, with ``hold``)."""

    def __init__(self, hold: bool = False) -> None:
        self.records: list[KafkaRecord] = []
        self.hold = hold

    async def publish(self, record: KafkaRecord) -> asyncio.Future[tuple[int, int]]:
        self.records.append(record)
        ack: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        if not self.hold:
            ack.set_result((0, len(self.records) - 1))
        return ack


def make_alert(room: str = "room-42", speaker: str = "alice", offset: float = 12.5,
               text: str = "you are an idiot", **changes: Any) -> Alert:
    segment = build_segment(room=room, speaker=speaker, offset=offset)
    alert = build_alert(build_transcript(segment, text=text))
    return dataclasses.replace(alert, **changes) if changes else alert


def alert_json(alert: Alert) -> dict[str, Any]:
    return alert_data(alert, detected_at=alert.transcript.segment.end_time + 1.0)


def transcript_json(room: str, speaker: str, offset: float, text: str) -> dict[str, Any]:
    return transcript_data(build_transcript(build_segment(room=room, speaker=speaker,
                                                          offset=offset), text=text))


def build_console(*, store: FakeStore | None = None, sink: AckingSink | None = None,
                  exporter: Exporter | None = None, **changes: Any
                  ) -> tuple[Console, AlertFeed]:
    settings = console_settings(**changes)
    feed = AlertFeed(RiskBoard(settings.risk_half_life_s), recent=settings.recent_alerts,
                     client_queue=settings.client_queue, max_clients=settings.max_clients)
    desk = ReviewDesk(sink, source="/roomwarden/console-test", ack_timeout_s=1.0) if sink else None
    console = Console(settings, feed, desk=desk, store=store, exporter=exporter)
    return console, feed


async def login(client: Any, token: str) -> Any:
    """POST the token to ``/api/login`` with an aiohttp test client (keeps the cookie)."""
    return await client.post("/api/login", json={"token": token})


__all__ = ["EVENT_T0", "AckingSink", "FakeStore", "build_console", "make_console_app"]
