"""Review events: an operator's decision on an alert, as a record on ``roomwarden.reviews.v1``.

A review is CloudEvents 1.0 binary mode like every other RoomWarden event: type
``io.roomwarden.moderation.review.v1``, value valid against ``alerts/schemas/review.v1.json``,
key and ``partitionkey`` the alert's room id (a room's reviews stay in order), ``ce_time`` the
time the console accepted it.

Idempotency: ``review_id`` is a UUIDv5 of (alert, reviewer, action, request id). The page makes
one request id per (opened alert, action), so a double click or a retry after a timeout yields
the same id -- :class:`ReviewDesk` then publishes it once and answers both requests with the
same outcome, and downstream consumers (the audit store) deduplicate by ``ce_id`` if a retry
reached Kafka twice. Re-opening the alert later and deciding again is a new review (a new
request id): a change of mind is recorded, not swallowed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from alerts.envelope import KafkaRecord, json_record, rfc3339
from alerts.schemas import REVIEW, validate

__all__ = [
    "REVIEWS_TOPIC",
    "ReviewAction",
    "ReviewDesk",
    "ReviewSink",
    "ReviewTimeoutError",
    "Review",
    "review_data",
    "review_record",
]

REVIEWS_TOPIC = "roomwarden.reviews.v1"
ReviewAction = Literal["acknowledge", "dismiss", "escalate"]
REVIEW_ACTIONS: tuple[str, ...] = get_args(ReviewAction)
Role = Literal["operator", "auditor"]
_REVIEW_NAMESPACE = uuid.UUID("3c0f5f7a-2b8e-4d8c-a6b1-7e4f9d2c1a55")
NOTE_MAX_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Review:
    """One decision on one alert (the fields of ``review.v1.json``; times as Unix seconds)."""

    review_id: str
    alert_id: str
    room_id: str
    action: ReviewAction
    reviewer: str
    role: Role
    note: str
    reviewed_at: float

    @staticmethod
    def make_id(alert_id: str, reviewer: str, action: str, request_id: str = "") -> str:
        """Deterministic review id: the same request (double click, retry) -> the same id."""
        return str(uuid.uuid5(_REVIEW_NAMESPACE, f"{alert_id}/{reviewer}/{action}/{request_id}"))


def review_data(review: Review) -> dict[str, Any]:
    """The record value (schema ``review.v1.json``)."""
    return {
        "review_id": review.review_id,
        "alert_id": review.alert_id,
        "room_id": review.room_id,
        "action": review.action,
        "reviewer": review.reviewer,
        "role": review.role,
        "note": review.note,
        "reviewed_at": rfc3339(review.reviewed_at),
    }


def review_record(review: Review, *, source: str, topic: str = REVIEWS_TOPIC) -> KafkaRecord:
    """A review as a CloudEvents binary-mode Kafka record.

    Raises:
        alerts.schemas.EventValidationError: the review would not match its schema (checked
            here, so the console answers 400 instead of publishing something consumers reject).
    """
    data = review_data(review)
    validate(REVIEW.name, data)
    return json_record(REVIEW, topic=topic, event_id=review.review_id, source=source,
                       room_id=review.room_id, when=review.reviewed_at, data=data)


class ReviewSink(Protocol):
    """Where review records go: :class:`alerts.publisher.KafkaPublisher` (or a test fake).
    ``publish`` returns once the record is accepted; the awaitable resolves on Kafka's ack."""

    async def publish(self, record: KafkaRecord) -> Awaitable[Any]: ...


class ReviewTimeoutError(TimeoutError):
    """Kafka did not acknowledge a review in time. The publisher keeps retrying it; resubmitting
    the same request is safe (same review id)."""


class ReviewDesk:
    """Publishes reviews and answers only after Kafka acknowledged them.

    Concurrent or repeated submissions of the same review id share one publication: the first
    one publishes, the others await its outcome (a double click is one record on Kafka).
    Outcomes are remembered for the ``remember`` most recent ids (bounded memory).

    Args:
        sink: the publisher.
        source: CloudEvents ``source`` of the records, e.g. ``/roomwarden/<instance>``.
        topic: the reviews topic.
        ack_timeout_s: how long a request waits for the ack before answering 503.
        remember: how many recent review ids to keep for deduplication.
        clock: wall clock (tests).
    """

    def __init__(self, sink: ReviewSink, *, source: str, topic: str = REVIEWS_TOPIC,
                 ack_timeout_s: float = 10.0, remember: int = 10_000,
                 clock: Any = time.time) -> None:
        self._sink = sink
        self._source = source
        self._topic = topic
        self._ack_timeout_s = ack_timeout_s
        self._remember = remember
        self._clock = clock
        self._outcomes: OrderedDict[str, asyncio.Future[Review]] = OrderedDict()

    async def submit(self, *, alert_id: str, room_id: str, action: ReviewAction, reviewer: str,
                     role: Role, note: str = "", request_id: str = "") -> tuple[Review, bool]:
        """Publish a review (or join the identical one already published/in flight).

        Returns:
            ``(review, new)``: the review as published (the first submission's time and note)
            and whether this call published it.

        Raises:
            ValueError: bad action or note (also EventValidationError, a ValueError).
            ReviewTimeoutError: no ack within ``ack_timeout_s`` (the record stays queued).
            alerts.publisher_params.PublisherClosedError / delivery errors from the sink.
        """
        if action not in REVIEW_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(REVIEW_ACTIONS)}, not {action!r}")
        if len(note) > NOTE_MAX_CHARS:
            raise ValueError(f"note is {len(note)} characters; at most {NOTE_MAX_CHARS}")
        review_id = Review.make_id(alert_id, reviewer, action, request_id)
        existing = self._outcomes.get(review_id)
        if existing is not None and not _failed(existing):
            return await self._wait(existing), False
        review = Review(review_id=review_id, alert_id=alert_id, room_id=room_id, action=action,
                        reviewer=reviewer, role=role, note=note, reviewed_at=self._clock())
        record = review_record(review, source=self._source, topic=self._topic)
        outcome: asyncio.Future[Review] = asyncio.get_running_loop().create_future()
        self._outcomes[review_id] = outcome
        while len(self._outcomes) > self._remember:
            self._outcomes.popitem(last=False)
        try:
            ack = await self._sink.publish(record)
        except BaseException as exc:
            self._fail(outcome, exc)
            raise
        task = asyncio.ensure_future(ack)
        task.add_done_callback(lambda t: self._settle(outcome, review, t))
        return await self._wait(outcome), True

    async def _wait(self, outcome: asyncio.Future[Review]) -> Review:
        try:
            return await asyncio.wait_for(asyncio.shield(outcome), self._ack_timeout_s)
        except TimeoutError as exc:
            raise ReviewTimeoutError(
                f"Kafka did not acknowledge the review within {self._ack_timeout_s:g} s; it "
                "stays queued and resubmitting is safe (same review id)") from exc

    @staticmethod
    def _settle(outcome: asyncio.Future[Review], review: Review,
                ack: asyncio.Future[Any]) -> None:
        if outcome.done():
            return
        if ack.cancelled():
            outcome.set_exception(asyncio.CancelledError())
        elif ack.exception() is not None:
            outcome.set_exception(ack.exception())  # type: ignore[arg-type]
        else:
            outcome.set_result(review)
        # An outcome nobody awaits any more must not log "exception never retrieved".
        if not outcome.cancelled():
            outcome.exception()

    @staticmethod
    def _fail(outcome: asyncio.Future[Review], exc: BaseException) -> None:
        if not outcome.done():
            outcome.set_exception(exc)
            outcome.exception()


def _failed(outcome: asyncio.Future[Review]) -> bool:
    """A publication that ended without an ack: a resubmission publishes again."""
    return outcome.done() and (outcome.cancelled() or outcome.exception() is not None)
