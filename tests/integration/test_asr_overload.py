"""ASR overloaded for real: more speakers than tiny.en on two cores can hear, through the real
recognizer and the real broker. The oldest waiting speech is shed as gaps, the backlog stays
bounded, and received seconds = transcribed + gap seconds (within 0.1 %)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

import pytest

from alerts.envelope import decode_record
from ingest.frames import SpeechSegment
from roomwarden.app import running_pipeline
from roomwarden.readback import read_records
from roomwarden.sample_room import load_sample_room
from roomwarden.settings import Settings
from tests.fakes_asr import make_segment

pytestmark = pytest.mark.integration

SPEAKERS = 24
QUEUE = 24
BACKLOG_S = 30.0


async def _speaker_segments(room_id: str) -> list[list[SpeechSegment]]:
    """The sample room's utterances, re-voiced by ``SPEAKERS`` speakers (distinct ids)."""
    from ingest.files import file_segments
    from roomwarden.app import vad_params

    room = load_sample_room()
    streams = []
    for path in room.speakers.values():
        streams.append([s async for s in file_segments(path, room_id, "x", vad_params(Settings()))])
    out = []
    for n in range(SPEAKERS):
        segs = streams[n % len(streams)]
        out.append([dataclasses.replace(make_segment(s.pcm, room_id=room_id,
                                                     speaker_id=f"speaker-{n:02d}", seq=s.seq,
                                                     start_offset_s=s.start_offset_s),
                                        end_monotonic=time.monotonic()) for s in segs])
    return out


async def test_overloaded_asr_sheds_oldest_and_accounts_for_every_second(
        kafka_broker: str) -> None:
    room_id = f"overload-{uuid.uuid4().hex[:8]}"
    settings = Settings()
    settings.kafka.bootstrap_servers = kafka_broker
    settings.pipeline.segment_queue = QUEUE
    settings.pipeline.segment_backlog_s = BACKLOG_S
    per_speaker = await _speaker_segments(room_id)
    depth_seen, backlog_seen = 0, 0.0

    async with running_pipeline(settings) as running:
        pipeline = running.pipeline
        started = time.monotonic()
        # One utterance from every speaker each 0.5 s: ~35 s of speech per wall second.
        for round_ in range(max(len(s) for s in per_speaker)):
            for segs in per_speaker:
                if round_ < len(segs):
                    await pipeline.segments.put(segs[round_])
                    depth_seen = max(depth_seen, pipeline.segments.qsize())
                    backlog_seen = max(backlog_seen, pipeline.segments.audio_s)
            await asyncio.sleep(0.5)
        await asyncio.wait_for(pipeline.drain(), 120)
        elapsed = time.monotonic() - started
        acc = dataclasses.replace(pipeline.accounting)

    received = sum(s.duration_s for segs in per_speaker for s in segs)
    print(f"\nreceived {acc.received_s:.1f} s, transcribed {acc.transcribed_s:.1f} s, shed "
          f"{acc.shed_s:.1f} s, failed {acc.failed_s:.1f} s in {elapsed:.1f} s; max backlog "
          f"{depth_seen} segments / {backlog_seen:.1f} s")
    assert acc.received_s == pytest.approx(received)
    assert acc.shed_s > 0.3 * received, "the test did not overload ASR"
    assert acc.transcribed_s > 0
    assert acc.transcribed_s + acc.shed_s + acc.failed_s == pytest.approx(acc.received_s,
                                                                          rel=1e-3)
    # Bounded: never more than the configured segments / seconds waiting.
    assert depth_seen <= QUEUE and backlog_seen <= BACKLOG_S + 15.0  # + one max-length segment

    # What reached Kafka says the same: one gap per shed segment, summing to the shed seconds,
    # and one transcript per transcribed segment.
    gaps = [decode_record(list(r.headers), r.value)[1]
            for r in await read_records(kafka_broker, settings.kafka.gaps_topic)
            if r.key == room_id.encode()]
    transcripts = [decode_record(list(r.headers), r.value)[1]
                   for r in await read_records(kafka_broker, settings.kafka.transcripts_topic)
                   if r.key == room_id.encode()]
    assert {g["reason"] for g in gaps} == {"asr_overload"}
    assert sum(g["duration_s"] for g in gaps) == pytest.approx(acc.shed_s, rel=1e-3)
    heard = sum(t["speech"]["end_offset_s"] - t["speech"]["start_offset_s"] for t in transcripts)
    assert heard + sum(g["duration_s"] for g in gaps) == pytest.approx(received, rel=1e-3)
