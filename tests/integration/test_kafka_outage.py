"""Kafka unreachable at start: the pipeline keeps judging, alerts wait in the bounded buffer
(visible in /metrics), and all of them land once a broker appears on that address."""

from __future__ import annotations

import asyncio

import pytest

from alerts.envelope import decode_record
from policy.engine import PolicyEngine
from policy.rules import RulePack, default_pack_path
from roomwarden.app import build_publisher
from roomwarden.broker import LocalBroker, free_port
from roomwarden.metrics import Metrics
from roomwarden.readback import read_records
from roomwarden.runner import Pipeline
from roomwarden.settings import Settings
from tests.fakes_asr import FakeRecognizer, make_segment

pytestmark = pytest.mark.integration


def gauge(metrics: Metrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


async def test_alerts_wait_for_kafka_and_then_arrive_once() -> None:
    port = free_port()
    settings = Settings()
    settings.kafka.bootstrap_servers = f"127.0.0.1:{port}"
    metrics = Metrics()
    publisher = build_publisher(settings, metrics)
    await publisher.start()  # must not raise: Kafka being down is not fatal
    pipeline = Pipeline(
        recognizer=FakeRecognizer(["shut up loser"] * 3),
        policy=PolicyEngine(RulePack.load(default_pack_path())),
        sink=publisher, metrics=metrics, source="/roomwarden/test")
    await pipeline.start()
    try:
        for i in range(3):
            await pipeline.segments.put(make_segment(seq=i, start_offset_s=2.0 * i,
                                                     room_id="outage-room"))
        await asyncio.wait_for(pipeline.segments.join(), 10)
        await asyncio.wait_for(pipeline._transcripts.join(), 10)
        assert gauge(metrics, "roomwarden_kafka_connected") == 0
        # 3 transcripts + 3 alerts + the 3 flagged segments' evidence audio
        assert gauge(metrics, "roomwarden_kafka_buffered_records") == 9
        assert gauge(metrics, "roomwarden_alert_latency_seconds_count") == 0

        async with LocalBroker(port=port) as broker:
            await asyncio.wait_for(pipeline.drain(), 60)
            assert gauge(metrics, "roomwarden_kafka_buffered_records") == 0
            assert gauge(metrics, "roomwarden_kafka_connected") == 1
            assert gauge(metrics, "roomwarden_alert_latency_seconds_count") == 3
            records = await read_records(broker.bootstrap_servers, "roomwarden.alerts.v1")
            ids = [decode_record(list(r.headers), r.value)[0]["id"] for r in records]
            assert len(ids) == 3 and len(set(ids)) == 3
            await publisher.stop()
    finally:
        await pipeline.stop()
