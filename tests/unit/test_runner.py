"""The composition root's pipeline, with fakes at the seams (recognizer, sink) and the real
default rule pack: push segments in, check what comes out and what the metrics saw."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from alerts.envelope import KafkaRecord, decode_record
from alerts.schemas import validate
from asr.frames import Transcript
from ingest.frames import SpeechSegment
from policy.engine import PolicyEngine
from policy.frames import Alert
from policy.rules import RulePack, default_pack_path
from roomwarden.metrics import Metrics
from roomwarden.runner import Pipeline
from tests.fakes_asr import FakeRecognizer, make_segment


class FakeSink:
    """Collects records; acks each one at once (or never, when ``hold`` is set)."""

    def __init__(self, hold: bool = False) -> None:
        self.records: list[KafkaRecord] = []
        self.hold = hold

    async def publish(self, record: KafkaRecord) -> asyncio.Future[object]:
        self.records.append(record)
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if not self.hold:
            fut.set_result((0, len(self.records)))
        return fut


class BrokenOnce(FakeRecognizer):
    async def transcribe(self, segment: SpeechSegment) -> Transcript:
        if segment.seq == 1:
            raise RuntimeError("decoder exploded")
        return await super().transcribe(segment)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0


async def run_through(recognizer: FakeRecognizer, segments: list[SpeechSegment],
                      sink: FakeSink | None) -> tuple[Pipeline, Metrics, list[Any]]:
    metrics = Metrics()
    delivered: list[Any] = []
    pipeline = Pipeline(recognizer=recognizer,
                        policy=PolicyEngine(RulePack.load(default_pack_path())),
                        sink=sink, metrics=metrics, source="/roomwarden/test",
                        on_alert=lambda a, lat: delivered.append((a, lat)))
    await pipeline.start()
    for seg in segments:
        await pipeline.segments.put(seg)
    await asyncio.wait_for(pipeline.drain(), 10)
    await pipeline.stop()
    return pipeline, metrics, delivered


async def test_segments_become_transcripts_and_alerts_on_the_sink() -> None:
    script = ["hello everyone", "shut up loser nobody asked you", "", "nice weather"]
    segments = [make_segment(seq=i, start_offset_s=3.0 * i) for i in range(4)]
    sink = FakeSink()
    pipeline, metrics, delivered = await run_through(FakeRecognizer(script), segments, sink)

    by_topic: dict[str, list[dict[str, Any]]] = {}
    for rec in sink.records:
        _, data = decode_record(rec.headers, rec.value)
        by_topic.setdefault(rec.topic, []).append(data)
        assert rec.key == b"room-1"
    assert len(by_topic["roomwarden.transcripts.v1"]) == 4  # every transcript, even rejected
    alerts = by_topic["roomwarden.alerts.v1"]
    assert [a["rule_id"] for a in alerts] == ["abuse.shut_up_loser"]
    for data in alerts:
        validate("alert", data)
    assert len(delivered) == 1 and isinstance(delivered[0][0], Alert)
    assert delivered[0][1] is not None and delivered[0][1] >= 0
    assert sample(metrics, "roomwarden_segments_total") == 4
    assert sample(metrics, "roomwarden_alerts_total", category="abuse") == 1
    assert sample(metrics, "roomwarden_transcripts_total", confidence_class="rejected") == 1
    assert sample(metrics, "roomwarden_alert_latency_seconds_count") == 1
    assert sample(metrics, "roomwarden_kafka_records_acked_total",
                  topic="roomwarden.alerts.v1") == 1


async def test_a_failing_segment_is_counted_and_the_rest_carry_on() -> None:
    segments = [make_segment(seq=i, start_offset_s=2.0 * i) for i in range(3)]
    recognizer = BrokenOnce({0: "shut up loser", 2: "shut up loser"})
    pipeline, metrics, _ = await run_through(recognizer, segments, FakeSink())
    assert sample(metrics, "roomwarden_stage_errors_total", stage="asr") == 1
    assert len(pipeline.alerts) == 2


async def test_low_confidence_alerts_only_suggest_review() -> None:
    recognizer = FakeRecognizer([("shut up loser", 0.2)])
    pipeline, _, _ = await run_through(recognizer, [make_segment()], None)
    assert [a.suggestion for a in pipeline.alerts] == ["review"]


async def test_without_a_sink_alerts_are_reported_in_process() -> None:
    _, _, delivered = await run_through(FakeRecognizer(["shut up loser"]), [make_segment()], None)
    assert len(delivered) == 1 and delivered[0][1] is None


async def test_queue_depth_is_reported_at_scrape_time() -> None:
    metrics = Metrics()
    pipeline = Pipeline(recognizer=FakeRecognizer(), policy=PolicyEngine(
        RulePack.load(default_pack_path())), sink=None, metrics=metrics, source="/t")
    for i in range(3):
        pipeline.segments.put_nowait(make_segment(seq=i))
    assert sample(metrics, "roomwarden_queue_depth", queue="segments") == 3


@pytest.mark.parametrize("hold", [True])
async def test_unacked_records_do_not_count_as_delivered(hold: bool) -> None:
    metrics = Metrics()
    pipeline = Pipeline(recognizer=FakeRecognizer(["shut up loser"]),
                        policy=PolicyEngine(RulePack.load(default_pack_path())),
                        sink=FakeSink(hold=hold), metrics=metrics, source="/t")
    await pipeline.start()
    await pipeline.segments.put(make_segment())
    await asyncio.wait_for(pipeline.segments.join(), 5)
    await asyncio.sleep(0.05)
    assert sample(metrics, "roomwarden_alerts_total", category="abuse") == 1
    assert sample(metrics, "roomwarden_alert_latency_seconds_count") == 0
    await pipeline.stop()
