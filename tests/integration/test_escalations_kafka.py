"""EscalationStage against the real Kafka-protocol broker (Tansu): the scripted sequence's
escalations arrive on the escalations topic exactly once each, in order, as valid CloudEvents."""

from __future__ import annotations

import uuid

import pytest

from alerts.envelope import decode_record
from alerts.publisher import KafkaPublisher, PublisherParams
from alerts.schemas import ESCALATION, validate
from policy.escalation import Escalator
from roomwarden.broker import create_topics
from roomwarden.escalations import EscalationStage
from tests.conftest import consume
from tests.escalation_script import EXPECTED, scripted_sequence, summary

pytestmark = pytest.mark.integration


async def test_scripted_escalations_are_published_in_order(kafka_broker: str) -> None:
    topic = f"it.escalations.{uuid.uuid4().hex[:8]}"
    await create_topics(kafka_broker, [topic], partitions=1)
    async with KafkaPublisher(PublisherParams(bootstrap_servers=kafka_broker)) as publisher:
        stage = EscalationStage(Escalator(), sink=publisher, source="/roomwarden/it-0",
                                topic=topic)
        for alert in scripted_sequence():
            await stage.handle([alert])
        await stage.close(timeout_s=10.0)
    assert summary(stage.escalations) == EXPECTED

    records = await consume(kafka_broker, topic, len(EXPECTED))
    assert len(records) == len(EXPECTED)  # no duplicates
    decoded = [decode_record(r.headers, r.value) for r in records]
    for attributes, data in decoded:
        # (validate_attributes would refuse the type until cloudevent.v1.json lists it)
        validate("escalation", data)
        assert attributes["type"] == ESCALATION.type
        assert attributes["dataschema"] == ESCALATION.dataschema
        assert attributes["subject"] == f"rooms/{data['room_id']}"
        assert attributes["id"] == data["escalation_id"]
    assert [data["escalation_id"] for _, data in decoded] == [
        e.escalation_id for e in stage.escalations]
    assert [(data["speaker_id"], data["action"]) for _, data in decoded] == [
        (speaker, action) for _, _, speaker, action in EXPECTED]
