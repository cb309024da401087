"""The composition root's pipeline, with fakes at the seams (recognizer, sink) and the real
default rule pack: push segments in, check what comes out and what the metrics saw."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from alerts.envelope import KafkaRecord, decode_record
from alerts.evidence_record import decode_evidence
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
    evidence = []
    for rec in sink.records:
        assert rec.key == b"room-1"
        if rec.topic == "roomwarden.evidence.v1":
            evidence.append(decode_evidence(rec.headers, rec.value))
            continue
        _, data = decode_record(rec.headers, rec.value)
        by_topic.setdefault(rec.topic, []).append(data)
    assert len(by_topic["roomwarden.transcripts.v1"]) == 4  # every transcript, even rejected
    alerts = by_topic["roomwarden.alerts.v1"]
    assert [a["rule_id"] for a in alerts] == ["abuse.shut_up_loser"]
    for data in alerts:
        validate("alert", data)
    # the flagged speech itself, once, naming its alert (the audit log keeps it as evidence)
    assert [e.metadata["alert_ids"] for e in evidence] == [[alerts[0]["alert_id"]]]
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


class SerialSlowRecognizer(FakeRecognizer):
    """One decode at a time, each costing ``factor`` x the segment's duration: a model that can
    serve 1/factor speakers in real time."""

    def __init__(self, factor: float) -> None:
        super().__init__(lambda s: "hello there")
        self._lock = asyncio.Lock()
        self.factor = factor

    async def transcribe(self, segment: SpeechSegment) -> Transcript:
        async with self._lock:
            await asyncio.sleep(segment.duration_s * self.factor)
            return await super().transcribe(segment)


async def test_overload_sheds_oldest_and_every_second_is_accounted_for() -> None:
    # 12 "speakers" each saying 1 s every 0.1 s of test time against a recognizer serving ~2.5
    # speakers in real time: far more speech than it can hear.
    metrics, sink = Metrics(), FakeSink()
    pipeline = Pipeline(recognizer=SerialSlowRecognizer(0.04),
                        policy=PolicyEngine(RulePack.load(default_pack_path())),
                        sink=sink, metrics=metrics, source="/t",
                        segment_queue=20, segment_backlog_s=10.0, asr_in_flight=4)
    await pipeline.start()
    depth = 0
    for tick in range(15):
        for speaker in range(12):
            pipeline.segments.put_nowait(make_segment(speaker_id=f"s{speaker}", seq=tick,
                                                      start_offset_s=float(tick)))
            depth = max(depth, pipeline.segments.qsize())
        await asyncio.sleep(0.1)
    await asyncio.wait_for(pipeline.drain(), 30)
    await pipeline.stop()

    acc = pipeline.accounting
    assert acc.received_s == pytest.approx(180.0)
    assert acc.shed_s > 60  # it really was overloaded
    assert acc.transcribed_s + acc.shed_s + acc.failed_s == pytest.approx(acc.received_s,
                                                                          rel=1e-3)
    assert depth <= 20 and pipeline.segments.audio_s == 0
    gaps = [decode_record(r.headers, r.value)[1] for r in sink.records
            if r.topic == "roomwarden.gaps.v1"]
    assert {g["reason"] for g in gaps} == {"asr_overload"}
    gap_seconds = sum(g["duration_s"] for g in gaps)
    assert gap_seconds == pytest.approx(acc.shed_s, rel=1e-3)
    assert sample(metrics, "roomwarden_asr_received_seconds_total") == pytest.approx(180.0)
    assert sample(metrics, "roomwarden_gap_seconds_total", reason="asr_overload") == \
        pytest.approx(acc.shed_s)
    assert sample(metrics, "roomwarden_asr_audio_seconds_total") == \
        pytest.approx(acc.transcribed_s)


async def test_a_failed_decode_is_a_gap_too() -> None:
    sink = FakeSink()
    segments = [make_segment(seq=i, start_offset_s=float(i)) for i in range(3)]
    pipeline, metrics, _ = await run_through(BrokenOnce(["a", "b", "c"]), segments, sink)
    acc = pipeline.accounting
    assert acc.failed_s == pytest.approx(1.0) and acc.transcribed_s == pytest.approx(2.0)
    gaps = [decode_record(r.headers, r.value)[1] for r in sink.records
            if r.topic == "roomwarden.gaps.v1"]
    assert [g["reason"] for g in gaps] == ["asr_failed"]


async def test_alerts_climb_the_escalation_ladder_and_escalations_are_published() -> None:
    from policy.escalation import EscalationPolicy, Escalator
    from roomwarden.escalations import EscalationStage

    sink, metrics = FakeSink(), Metrics()
    stage = EscalationStage(Escalator(EscalationPolicy()), sink=sink, source="/t")
    pipeline = Pipeline(recognizer=FakeRecognizer(["shut up loser"] * 6),
                        policy=PolicyEngine(RulePack.load(default_pack_path())),
                        sink=sink, metrics=metrics, source="/t", escalations=stage)
    await pipeline.start()
    for i in range(6):
        await pipeline.segments.put(make_segment(seq=i, start_offset_s=5.0 * i))
    await asyncio.wait_for(pipeline.drain(), 10)
    await pipeline.stop()
    actions = [e.action for e in stage.escalations]
    assert actions[0] == "host_warning" and "operator_alert" in actions
    records = [r for r in sink.records if r.topic == "roomwarden.escalations.v1"]
    assert len(records) == len(actions)
    for r in records:
        validate("escalation", decode_record(r.headers, r.value)[1])
    assert sample(metrics, "roomwarden_escalations_total", action="host_warning") == 1
