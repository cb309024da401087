"""Review events: schema-valid CloudEvents, deterministic ids, one record per double click,
the answer only after the ack."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from alerts.console.reviews import (
    REVIEWS_TOPIC,
    Review,
    ReviewDesk,
    ReviewTimeoutError,
    review_data,
    review_record,
)
from alerts.envelope import KafkaRecord, decode_record
from alerts.schemas import EventValidationError, validate, validate_attributes

ALERT_ID = str(uuid.uuid4())


def review(**changes: Any) -> Review:
    fields: dict[str, Any] = dict(
        review_id=Review.make_id(ALERT_ID, "ana", "dismiss", "r1"), alert_id=ALERT_ID,
        room_id="room-42", action="dismiss", reviewer="ana", role="operator",
        note="false positive: a quote", reviewed_at=1_763_755_260.123456)
    fields.update(changes)
    return Review(**fields)


def test_review_record_is_a_valid_binary_mode_cloudevent_keyed_by_room() -> None:
    record = review_record(review(), source="/roomwarden/console-1")
    assert record.topic == REVIEWS_TOPIC and record.key == b"room-42"
    attributes, data = decode_record(record.headers, record.value)
    validate_attributes(attributes)
    validate("review", data)
    assert attributes["type"] == "io.roomwarden.moderation.review.v1"
    assert attributes["id"] == data["review_id"]
    assert attributes["partitionkey"] == "room-42"
    assert data == review_data(review())
    assert data["reviewed_at"] == "2025-11-21T20:01:00.123Z"
    assert attributes["time"].startswith("2025-11-21T20:01:00.123")


@pytest.mark.parametrize("changes, field", [
    ({"action": "ban"}, "action"),
    ({"role": "admin"}, "role"),
    ({"reviewer": ""}, "reviewer"),
    ({"note": "x" * 2001}, "note"),
    ({"alert_id": "not-a-uuid"}, "alert_id"),
])
def test_bad_reviews_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(EventValidationError, match=field):
        review_record(review(**changes), source="/x")


def test_review_ids_are_deterministic_per_request() -> None:
    same = Review.make_id(ALERT_ID, "ana", "dismiss", "r1")
    assert same == Review.make_id(ALERT_ID, "ana", "dismiss", "r1")
    others = {Review.make_id(ALERT_ID, "bo", "dismiss", "r1"),
              Review.make_id(ALERT_ID, "ana", "escalate", "r1"),
              Review.make_id(ALERT_ID, "ana", "dismiss", "r2")}
    assert same not in others and len(others) == 3


class FakeSink:
    """Records what was published; acks when the test says so."""

    def __init__(self) -> None:
        self.records: list[KafkaRecord] = []
        self.acks: list[asyncio.Future[tuple[int, int]]] = []

    async def publish(self, record: KafkaRecord) -> asyncio.Future[tuple[int, int]]:
        self.records.append(record)
        ack: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack


async def test_double_click_publishes_once_and_both_wait_for_the_ack() -> None:
    sink = FakeSink()
    desk = ReviewDesk(sink, source="/roomwarden/c", clock=lambda: 1_763_755_260.0)
    kwargs: dict[str, Any] = dict(alert_id=ALERT_ID, room_id="room-42", action="dismiss",
                                  reviewer="ana", role="operator", request_id="r1")
    first = asyncio.create_task(desk.submit(**kwargs))
    second = asyncio.create_task(desk.submit(**kwargs))
    await asyncio.sleep(0.01)
    assert len(sink.records) == 1
    assert not first.done() and not second.done()  # no answer before the ack
    sink.acks[0].set_result((0, 7))
    (r1, new1), (r2, new2) = await first, await second
    assert r1 == r2 and (new1, new2) == (True, False)
    data = json.loads(sink.records[0].value)
    assert data["review_id"] == r1.review_id and data["action"] == "dismiss"
    # A new request (the alert reopened) is a new review.
    again = asyncio.create_task(desk.submit(**{**kwargs, "request_id": "r2"}))
    await asyncio.sleep(0.01)
    sink.acks[1].set_result((0, 8))
    assert (await again)[0].review_id != r1.review_id and len(sink.records) == 2


async def test_no_ack_in_time_is_a_timeout_and_a_failed_publish_can_be_retried() -> None:
    sink = FakeSink()
    desk = ReviewDesk(sink, source="/c", ack_timeout_s=0.05)
    kwargs: dict[str, Any] = dict(alert_id=ALERT_ID, room_id="r", action="escalate",
                                  reviewer="ana", role="operator")
    with pytest.raises(ReviewTimeoutError, match="resubmitting is safe"):
        await desk.submit(**kwargs)
    sink.acks[0].set_exception(RuntimeError("broker said no"))
    await asyncio.sleep(0)
    task = asyncio.create_task(desk.submit(**kwargs))  # failed: published again
    await asyncio.sleep(0.01)
    assert len(sink.records) == 2
    sink.acks[1].set_result((1, 1))
    assert (await task)[1] is True


async def test_bad_action_is_a_value_error_before_anything_is_published() -> None:
    sink = FakeSink()
    desk = ReviewDesk(sink, source="/c")
    with pytest.raises(ValueError, match="action must be one of"):
        await desk.submit(alert_id=ALERT_ID, room_id="r", action="ban",  # type: ignore[arg-type]
                          reviewer="ana", role="operator")
    assert sink.records == []
