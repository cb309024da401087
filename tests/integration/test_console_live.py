"""The console's Kafka tail on the real broker: it starts at the end (the past comes from the
audit store), follows alerts, escalations and reviews, reads a topic created after it started
from its beginning, skips bad records, and reviews it publishes come back through Kafka."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest

from alerts.console.feed import AlertFeed
from alerts.console.live import ConsoleTopics, LiveFeed
from alerts.console.reviews import ReviewDesk
from alerts.console.risk import RiskBoard
from alerts.envelope import KafkaRecord, alert_record
from alerts.escalation_record import escalation_record
from alerts.publisher import KafkaPublisher, PublisherParams
from policy.escalation import Escalation
from roomwarden.broker import create_topics
from tests.asr_worker_harness import produce
from tests.console_fakes import FakeStore, alert_json, make_alert

pytestmark = pytest.mark.integration


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_live_feed_follows_the_topics_from_their_end(kafka_broker: str) -> None:
    run = uuid.uuid4().hex[:8]
    topics = ConsoleTopics(alerts=f"cl-{run}.alerts", escalations=f"cl-{run}.escalations",
                           reviews=f"cl-{run}.reviews")
    await create_topics(kafka_broker, [topics.alerts, topics.escalations], partitions=3)
    before = make_alert(room=f"{run}-a", offset=1.0)
    await produce(kafka_broker, [alert_record(before, source="/t", topic=topics.alerts)])

    store = FakeStore()
    remembered = make_alert(room=f"{run}-b", offset=2.0)
    store.add(f"{run}-b", "alert", remembered.alert_id, time.time() - 60, alert_json(remembered))
    store.add(f"{run}-b", "alert", "too-old", time.time() - 7200,
              alert_json(make_alert(room=f"{run}-b", offset=3.0)))
    feed = AlertFeed(RiskBoard(300.0))
    live = LiveFeed(feed, bootstrap_servers=kafka_broker, topics=topics, store=store,
                    backfill_s=900, discover_every_s=0.5)
    await live.start()
    try:
        assert live.connected
        assert [v["alert"]["alert_id"] for v in feed.recent()] == [remembered.alert_id]

        during = [make_alert(room=f"{run}-{i}", offset=10.0 + i) for i in range(5)]
        escalation = Escalation(
            escalation_id=str(uuid.uuid4()), room_id=f"{run}-1", speaker_id="alice",
            action="operator_alert", reason="repeat", risk_speaker=6.0, risk_room=7.0,
            alert_ids=(during[1].alert_id,), created_at=time.time())
        records = [alert_record(a, source="/t", topic=topics.alerts) for a in during]
        records.insert(2, KafkaRecord(topics.alerts, b"x", [], b"not an event"))
        records.append(escalation_record(escalation, source="/t", topic=topics.escalations))
        await produce(kafka_broker, records)
        await until(lambda: feed.alert_count == 6 and len(feed.risk) == 1)
        ids = {v["alert"]["alert_id"] for v in feed.recent()}
        assert before.alert_id not in ids  # from the end: the past is the store's job
        assert {a.alert_id for a in during} <= ids
        assert feed.risk.snapshot()[0]["room_id"] == f"{run}-1"
        await until(lambda: live.bad_records == 1)

        # the reviews topic does not exist yet: the first review creates it, and the tail
        # reads it from its beginning
        async with KafkaPublisher(PublisherParams(bootstrap_servers=kafka_broker)) as pub:
            desk = ReviewDesk(pub, source="/roomwarden/console", topic=topics.reviews)
            review, new = await desk.submit(alert_id=during[0].alert_id,
                                            room_id=during[0].room_id, action="dismiss",
                                            reviewer="ana", role="operator")
        assert new
        await until(lambda: feed.review_of(during[0].alert_id) is not None)
        assert feed.review_of(during[0].alert_id)["review_id"] == review.review_id  # type: ignore[index]
    finally:
        await live.stop()
