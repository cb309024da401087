"""The console's in-memory view of the live streams, fanned out to every browser.

:class:`AlertFeed` holds the recent alerts (with the latest review of each), the risk board, and
a short log of numbered events (``alert``, ``review``, ``risk``). Each browser stream is a
:class:`StreamClient` with its own bounded queue: publishing an event is a ``put_nowait`` per
client, so it never waits for anyone; a client whose queue is full is *dropped* (its queue
cleared and closed) -- a slow or stalled browser loses its stream, the others never notice. The
browser's ``EventSource`` reconnects on its own with ``Last-Event-ID`` and the feed replays what
it missed from the event log (or, if that is gone, sends a fresh snapshot).

Event ids are ``<epoch>.<seq>``: the epoch is random per console process, so a browser that
reconnects to a restarted console gets a snapshot rather than a replay of unrelated numbers.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from alerts.console.hooks import EventHook, emit_event
from alerts.console.risk import RiskBoard

__all__ = ["AlertFeed", "FeedEvent", "FeedFullError", "StreamClient", "sse_frame"]

EventKind = Literal["alert", "review", "risk", "ready"]
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One numbered event of the feed (``data`` is JSON-ready; ``body`` its encoding, made
    once per event rather than once per browser)."""

    seq: int
    kind: EventKind
    data: Mapping[str, Any]
    body: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def of(cls, seq: int, kind: EventKind, data: Mapping[str, Any]) -> FeedEvent:
        # json.dumps escapes CR and LF inside strings: the JSON is one line whatever was said
        # in the room, so a transcript can never end the SSE frame or inject a field.
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(seq, kind, data, body)


def sse_frame(event: FeedEvent, epoch: str) -> bytes:
    """One Server-Sent Events frame: ``id``, ``event`` and a single ``data`` line."""
    body = event.body or FeedEvent.of(event.seq, event.kind, event.data).body
    return b"id: %s.%d\nevent: %s\ndata: %s\n\n" % (epoch.encode(), event.seq,
                                                       event.kind.encode(), body)


@dataclass(eq=False, slots=True)
class StreamClient:
    """One browser stream: a bounded queue of events; ``None`` in it means "stream over"."""

    queue: asyncio.Queue[FeedEvent | None]
    label: str = ""
    dropped: bool = False
    connected_at: float = field(default_factory=time.time)


class FeedFullError(RuntimeError):
    """``max_clients`` streams are open already."""


class AlertFeed:
    """Recent alerts, reviews and risk, and the browsers following them.

    Args:
        risk: the risk board fed by :meth:`add_escalation`.
        recent: alerts kept (oldest forgotten first); the event log keeps four times as many
            events for replays.
        client_queue: events queued per client before it is dropped.
        max_clients: concurrent streams.
        on_event: optional hook ``(name, fields)`` for metrics/logs: ``client_dropped``
            (``label``, ``queued``), ``clients`` (``count``).
        clock: wall clock (received times).
    """

    def __init__(self, risk: RiskBoard, *, recent: int = 500, client_queue: int = 256,
                 max_clients: int = 100, on_event: EventHook | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.risk = risk
        self.epoch = secrets.token_hex(4)
        self._recent = recent
        self._client_queue = client_queue
        self._max_clients = max_clients
        self._on_event = on_event
        self._clock = clock
        self._seq = 0
        self._alerts: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._reviews: OrderedDict[str, dict[str, Any]] = OrderedDict()  # alert id -> latest
        self._review_ids: OrderedDict[str, None] = OrderedDict()
        self._log: deque[FeedEvent] = deque(maxlen=4 * recent)
        self._clients: set[StreamClient] = set()
        self.dropped_clients = 0

    # --- input ------------------------------------------------------------------------------

    def add_alert(self, data: Mapping[str, Any]) -> bool:
        """Take an alert's data (schema ``alert.v1.json``); False for one already known."""
        alert_id = str(data["alert_id"])
        if alert_id in self._alerts:
            return False
        self._seq += 1
        item = {"seq": self._seq, "received_at": self._clock(), "alert": dict(data)}
        self._alerts[alert_id] = item
        while len(self._alerts) > self._recent:
            self._alerts.popitem(last=False)
        self._broadcast(FeedEvent.of(self._seq, "alert", self._view(item)))
        return True

    def add_review(self, data: Mapping[str, Any]) -> bool:
        """Take a review's data (schema ``review.v1.json``); False for a known review id."""
        review_id = str(data["review_id"])
        if review_id in self._review_ids:
            return False
        self._review_ids[review_id] = None
        _trim(self._review_ids, 8 * self._recent)
        review = {k: data[k] for k in ("review_id", "alert_id", "action", "reviewer", "role",
                                       "note", "reviewed_at") if k in data}
        alert_id = str(data["alert_id"])
        self._reviews.pop(alert_id, None)
        self._reviews[alert_id] = review
        _trim(self._reviews, 4 * self._recent)
        self._seq += 1
        self._broadcast(FeedEvent.of(self._seq, "review", review))
        return True

    def add_escalation(self, data: Mapping[str, Any]) -> bool:
        """Take an escalation's data (schema ``escalation.v1.json``) into the risk board and
        tell the browsers the room's new view; False for a duplicate."""
        if not self.risk.observe(data):
            return False
        view = self.risk.room(str(data["room_id"]))
        self._seq += 1
        self._broadcast(FeedEvent.of(self._seq, "risk", view or {}))
        return True

    # --- reading ----------------------------------------------------------------------------

    def alert(self, alert_id: str) -> dict[str, Any] | None:
        """A recent alert's view ``{seq, received_at, alert, review}``, or None."""
        item = self._alerts.get(alert_id)
        return None if item is None else self._view(item)

    def review_of(self, alert_id: str) -> dict[str, Any] | None:
        return self._reviews.get(alert_id)

    def recent(self, *, limit: int = 100, severity: str | None = None,
               category: str | None = None, room: str | None = None) -> list[dict[str, Any]]:
        """Recent alert views, newest first, optionally filtered (exact matches)."""
        out: list[dict[str, Any]] = []
        for item in reversed(self._alerts.values()):
            a = item["alert"]
            if ((severity and a.get("severity") != severity)
                    or (category and a.get("category") != category)
                    or (room and a.get("room_id") != room)):
                continue
            out.append(self._view(item))
            if len(out) >= limit:
                break
        return out

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def alert_count(self) -> int:
        return len(self._alerts)

    # --- streams ----------------------------------------------------------------------------

    def subscribe(self, last_event_id: str | None = None, *, label: str = ""
                  ) -> tuple[StreamClient, list[FeedEvent]]:
        """Register a stream; returns it and the events to send first.

        With a ``Last-Event-ID`` of this epoch still covered by the event log: the events after
        it. Otherwise a snapshot: every recent alert (with its review), then a ``ready`` event
        carrying the current position.

        Raises:
            FeedFullError: ``max_clients`` streams are open.
        """
        if len(self._clients) >= self._max_clients:
            raise FeedFullError(f"{self._max_clients} console streams are open already")
        client = StreamClient(asyncio.Queue(self._client_queue), label=label)
        self._clients.add(client)
        self._emit("clients", count=len(self._clients))
        return client, self._backlog(last_event_id)

    def unsubscribe(self, client: StreamClient) -> None:
        if client in self._clients:
            self._clients.discard(client)
            self._emit("clients", count=len(self._clients))

    def close(self) -> None:
        """End every stream (shutdown)."""
        for client in list(self._clients):
            self._end(client)
        self._clients.clear()
        self._emit("clients", count=0)

    def _backlog(self, last_event_id: str | None) -> list[FeedEvent]:
        since = self._replay_from(last_event_id)
        if since is not None:
            return [e for e in self._log if e.seq > since]
        snapshot = [FeedEvent.of(item["seq"], "alert", self._view(item))
                    for item in self._alerts.values()]
        return [*snapshot, FeedEvent.of(self._seq, "ready", {"alerts": len(snapshot)})]

    def _replay_from(self, last_event_id: str | None) -> int | None:
        if not last_event_id:
            return None
        epoch, _, seq_text = last_event_id.partition(".")
        if epoch != self.epoch or not seq_text.isdigit():
            return None
        seq = int(seq_text)
        oldest = self._log[0].seq if self._log else self._seq + 1
        if seq > self._seq or seq < oldest - 1:
            return None  # from the future (cannot be) or older than the log: snapshot
        return seq

    def _broadcast(self, event: FeedEvent) -> None:
        self._log.append(event)
        for client in list(self._clients):
            try:
                client.queue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(client)

    def _drop(self, client: StreamClient) -> None:
        queued = client.queue.qsize()
        self._clients.discard(client)
        self._end(client)
        client.dropped = True
        self.dropped_clients += 1
        self._emit("client_dropped", label=client.label, queued=queued)
        self._emit("clients", count=len(self._clients))

    @staticmethod
    def _end(client: StreamClient) -> None:
        while not client.queue.empty():
            client.queue.get_nowait()
        client.queue.put_nowait(None)

    def _view(self, item: Mapping[str, Any]) -> dict[str, Any]:
        alert_id = str(item["alert"]["alert_id"])
        return {"seq": item["seq"], "received_at": item["received_at"], "alert": item["alert"],
                "review": self._reviews.get(alert_id)}

    def _emit(self, name: str, **fields: Any) -> None:
        emit_event(self._on_event, name, fields)


def _trim(mapping: OrderedDict[str, Any], size: int) -> None:
    while len(mapping) > size:
        mapping.popitem(last=False)
