"""Distributed mode's intake: segments to the segments topic as segment records, the live
backlog's shedding while Kafka does not ack, and every second accounted for
(received = handed off + shed + failed). A fake sink stands in for Kafka (the real broker is in
tests/integration/test_distributed_e2e.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from alerts.envelope import KafkaRecord, decode_record
from alerts.segment_record import decode_segment
from ingest.frames import SpeechSegment, StreamGap
from roomwarden.app import Running, running_pipeline
from roomwarden.handoff import SegmentHandoff
from roomwarden.metrics import Metrics
from roomwarden.settings import load_settings
from tests.fakes_asr import make_segment


class ControlledSink:
    """Records what is published; acks at once, or holds every ack until :meth:`release`
    (Kafka unreachable), or fails the acks of chosen segment ids (a non-retriable refusal)."""

    def __init__(self, *, hold: bool = False, fail_ids: frozenset[str] = frozenset()) -> None:
        self.records: list[KafkaRecord] = []
        self.hold, self.fail_ids = hold, fail_ids
        self._held: list[asyncio.Future[object]] = []

    async def publish(self, record: KafkaRecord) -> asyncio.Future[object]:
        self.records.append(record)
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        ce_id = (record.header("ce_id") or b"").decode()
        if ce_id in self.fail_ids:
            fut.set_exception(RuntimeError("MessageSizeTooLargeError (non-retriable)"))
        elif self.hold:
            self._held.append(fut)
        else:
            fut.set_result((0, len(self.records)))
        return fut

    def release(self) -> None:
        self.hold = False
        for fut in self._held:
            fut.set_result((0, 0))
        self._held.clear()

    def on(self, topic: str) -> list[KafkaRecord]:
        return [r for r in self.records if r.topic == topic]


def segments(n: int, room: str = "room-a", duration_s: float = 1.0) -> list[SpeechSegment]:
    return [make_segment(duration_s=duration_s, start_offset_s=float(i) * 2, seq=i,
                         room_id=room, speaker_id="alice") for i in range(n)]


def handoff(sink: ControlledSink, metrics: Metrics, **bounds: object) -> SegmentHandoff:
    return SegmentHandoff(sink=sink, metrics=metrics, source="/roomwarden/test",
                          segments_topic="segs.t", gaps_topic="gaps.t", **bounds)  # type: ignore[arg-type]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels or None) or 0.0


async def until(check: Callable[[], bool], within_s: float = 2.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_every_segment_becomes_a_segment_record_keyed_by_room_in_order() -> None:
    sink, metrics = ControlledSink(), Metrics()
    h = handoff(sink, metrics)
    await h.start()
    sent = segments(5, "room-a") + segments(3, "room-b")
    for s in sent:
        await h.segments.put(s)
    await h.drain()
    await h.stop()
    records = sink.on("segs.t")
    assert [decode_segment(r.headers, r.value).segment_id for r in records] == \
        [s.segment_id for s in sent]  # in order: one room's stay ordered on its partition
    assert [r.key for r in records] == [b"room-a"] * 5 + [b"room-b"] * 3
    decoded = decode_segment(records[0].headers, records[0].value)
    assert decoded.pcm == sent[0].pcm and decoded.room_id == "room-a"
    a = h.accounting
    assert a.received_s == pytest.approx(8.0) and a.handed_off_s == pytest.approx(8.0)
    assert a.shed_s == a.failed_s == 0 and a.pending_s == pytest.approx(0.0)
    assert sample(metrics, "roomwarden_handoff_seconds_total") == pytest.approx(8.0)
    assert sample(metrics, "roomwarden_asr_received_seconds_total") == pytest.approx(8.0)
    assert sample(metrics, "roomwarden_segments_total") == 8
    assert sample(metrics, "roomwarden_kafka_records_acked_total", topic="segs.t") == 8
    assert not sink.on("gaps.t")


async def test_kafka_unreachable_fills_the_backlog_then_sheds_the_oldest_as_gaps() -> None:
    """Acks held (Kafka away): ``in_flight`` records wait in the producer, the backlog holds
    ``segment_queue`` more, the rest is shed oldest-first -- and every second is accounted
    for once Kafka is back."""
    sink, metrics = ControlledSink(hold=True), Metrics()
    h = handoff(sink, metrics, segment_queue=3, segment_backlog_s=100.0, in_flight=2)
    await h.start()
    sent = segments(10)
    for s in sent:
        await h.segments.put(s)
        await asyncio.sleep(0)  # the publisher loop takes what it can
    await until(lambda: len(sink.on("segs.t")) == 2)
    await asyncio.sleep(0.05)
    assert len(sink.on("segs.t")) == 2  # no more than in_flight handed over without acks
    assert h.segments.qsize() == 3
    a = h.accounting
    assert a.shed_s == pytest.approx(5.0) and a.handed_off_s == 0
    assert a.pending_s == pytest.approx(5.0)  # 2 unacked + 3 waiting
    assert sample(metrics, "roomwarden_queue_depth", queue="segments") == 3
    sink.release()  # Kafka is back
    while h.segments.qsize() or h.accounting.pending_s > 1e-9:
        sink.release()
        await asyncio.sleep(0.01)
    await h.drain()
    await h.stop()
    assert a.received_s == pytest.approx(10.0)
    assert a.received_s == pytest.approx(a.handed_off_s + a.shed_s + a.failed_s)
    assert a.handed_off_s == pytest.approx(5.0) and a.failed_s == 0
    handed = [decode_segment(r.headers, r.value).seq for r in sink.on("segs.t")]
    assert handed == [0, 1, 7, 8, 9]  # the oldest waiting (2..6) were shed, not the newest
    gaps = [decode_record(r.headers, r.value)[1] for r in sink.on("gaps.t")]
    assert Counter(g["reason"] for g in gaps) == {"asr_overload": 5}
    assert sum(g["duration_s"] for g in gaps) == pytest.approx(a.shed_s)
    assert sample(metrics, "roomwarden_gap_seconds_total", reason="asr_overload") == \
        pytest.approx(5.0)


async def test_a_segment_kafka_refuses_for_good_is_a_failed_gap() -> None:
    sent = segments(3)
    sink, metrics = ControlledSink(fail_ids=frozenset({sent[1].segment_id})), Metrics()
    h = handoff(sink, metrics)
    await h.start()
    for s in sent:
        await h.segments.put(s)
    await h.drain()
    await h.stop()
    a = h.accounting
    assert (a.handed_off_s, a.failed_s, a.shed_s) == pytest.approx((2.0, 1.0, 0.0))
    assert a.received_s == pytest.approx(a.handed_off_s + a.shed_s + a.failed_s)
    gaps = [decode_record(r.headers, r.value)[1] for r in sink.on("gaps.t")]
    assert [(g["reason"], g["room_id"], g["speaker_id"]) for g in gaps] == \
        [("handoff_failed", "room-a", "alice")]
    assert sample(metrics, "roomwarden_stage_errors_total", stage="handoff") == 1


async def test_live_source_gaps_go_to_the_gaps_topic() -> None:
    sink, metrics = ControlledSink(), Metrics()
    h = handoff(sink, metrics)
    await h.publish_gap(StreamGap("1234", "", 1000.0, 1003.5, "janus_unreachable", "janus"))
    await h.drain()
    _, data = decode_record(sink.records[0].headers, sink.records[0].value)
    assert sink.records[0].topic == "gaps.t" and data["reason"] == "janus_unreachable"
    assert sample(metrics, "roomwarden_gap_seconds_total", reason="janus_unreachable") == 3.5


async def test_kafka_mode_refuses_commands_that_need_the_local_pipeline() -> None:
    settings = load_settings(pipeline={"asr": "kafka"}, kafka={"bootstrap_servers": "x:9"})
    with pytest.raises(ValueError, match="pipeline.asr = 'local'"):
        async with running_pipeline(settings, on_alert=lambda a, lat: None):
            pass
    with pytest.raises(ValueError, match="pipeline.asr = 'local'"):
        async with running_pipeline(settings, kafka=False):
            pass


def test_running_names_the_missing_local_pipeline_in_kafka_mode() -> None:
    sink, metrics = ControlledSink(), Metrics()
    running = Running(load_settings(), metrics, handoff(sink, metrics), None, None)
    assert running.intake.segments.qsize() == 0
    with pytest.raises(RuntimeError, match="no local pipeline"):
        _ = running.pipeline
