"""Distributed mode end to end, every part its own process as an operator runs it:
``roomwarden serve`` with ``pipeline.asr = kafka`` (no model: segments to Kafka), ``roomwarden
worker asr`` (tiny.en) and ``roomwarden worker policy``, on the real broker. The sample room is
published over WHIP (real WebRTC on 127.0.0.1, real time); every expected alert must arrive on
the alerts topic exactly once after dedupe by alert id, nothing on the near-misses, nothing
dead-lettered, no speech shed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.envelope import decode_record
from alerts.schemas import validate
from alerts.segment_record import decode_segment
from ingest.ice import restrict_host_addresses
from ingest.whip_client import publish_file
from roomwarden.broker import create_topics, free_port
from roomwarden.sample_room import check_alerts, load_sample_room, observed_from_events
from tests.asr_worker_harness import (
    SESSION_TIMEOUT_MS,
    TopicWatcher,
    WorkerProcess,
    wait_for,
)

pytestmark = pytest.mark.integration
TOKEN = "distributed-test-token"


async def scrape(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    return {s.name + "".join(f"{{{k}={v}}}" for k, v in sorted(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


async def wait_healthy(url: str, proc: WorkerProcess, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            assert proc.proc is not None and proc.proc.returncode is None, proc.log_tail()
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} never became healthy:\n{proc.log_tail()}")


def has_partitions(worker: WorkerProcess) -> bool:
    return bool(worker.events("partitions_assigned"))


@contextlib.asynccontextmanager
async def stopped_at_exit(*procs: WorkerProcess) -> AsyncIterator[None]:
    """SIGTERM on the way out (each must exit 0: batch in flight committed, backlog drained);
    ``WorkerProcess`` kills whatever is still running if this fails."""
    yield
    for p in procs:
        assert p.proc is not None
        p.proc.send_signal(signal.SIGTERM)
    for p in procs:
        assert p.proc is not None
        await asyncio.wait_for(p.proc.wait(), 60)
        assert p.proc.returncode == 0, p.log_tail()


async def test_sample_room_through_serve_worker_asr_and_worker_policy(
        kafka_broker: str, tmp_path: Path) -> None:
    room = load_sample_room()
    run = uuid.uuid4().hex[:8]
    topics = {name: f"dist-{run}.{name}" for name in
              ("segments", "segments-dlq", "transcripts", "transcripts-dlq", "alerts", "gaps")}
    await create_topics(kafka_broker, topics.values(), partitions=4)
    serve_port, asr_port, policy_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMWARDEN_")}
    env.update({
        "ROOMWARDEN_INSTANCE": f"dist-{run}",
        "ROOMWARDEN_LOG__FORMAT": "json",
        "ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS": kafka_broker,
        "ROOMWARDEN_KAFKA__TRANSCRIPTS_TOPIC": topics["transcripts"],
        "ROOMWARDEN_KAFKA__ALERTS_TOPIC": topics["alerts"],
        "ROOMWARDEN_KAFKA__GAPS_TOPIC": topics["gaps"],
        "ROOMWARDEN_PIPELINE__ASR": "kafka",
        "ROOMWARDEN_HTTP__HOST": "127.0.0.1",
        "ROOMWARDEN_HTTP__PORT": str(serve_port),
        "ROOMWARDEN_HTTP__WHIP_TOKEN": TOKEN,
        "ROOMWARDEN_WEBRTC__ICE_HOST_ADDRESSES": '["127.0.0.1"]',
    })
    for worker, port in (("ASR_WORKER", asr_port), ("POLICY_WORKER", policy_port)):
        env.update({
            f"ROOMWARDEN_{worker}__GROUP_ID": f"dist-{run}-{worker.lower()}",
            f"ROOMWARDEN_{worker}__SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            f"ROOMWARDEN_{worker}__HEARTBEAT_INTERVAL_MS": "1000",
            f"ROOMWARDEN_{worker}__METRICS_HOST": "127.0.0.1",
            f"ROOMWARDEN_{worker}__METRICS_PORT": str(port),
        })
    env["ROOMWARDEN_ASR_WORKER__SEGMENTS_TOPIC"] = topics["segments"]
    env["ROOMWARDEN_ASR_WORKER__DLQ_TOPIC"] = topics["segments-dlq"]
    env["ROOMWARDEN_POLICY_WORKER__DLQ_TOPIC"] = topics["transcripts-dlq"]
    serve_url = f"http://127.0.0.1:{serve_port}"
    asr_url, policy_url = f"http://127.0.0.1:{asr_port}", f"http://127.0.0.1:{policy_port}"

    t0 = time.monotonic()
    restrict_host_addresses(["127.0.0.1"])  # the publishing side too
    try:
        async with WorkerProcess(env, tmp_path / "serve.log", ("serve",)) as serve, \
                WorkerProcess(env, tmp_path / "asr.log") as asr, \
                WorkerProcess(env, tmp_path / "policy.log", ("worker", "policy")) as policy, \
                TopicWatcher(kafka_broker, topics["segments"]) as segments, \
                TopicWatcher(kafka_broker, topics["transcripts"]) as transcripts, \
                TopicWatcher(kafka_broker, topics["alerts"]) as alerts, \
                TopicWatcher(kafka_broker, topics["segments-dlq"]) as segments_dlq, \
                TopicWatcher(kafka_broker, topics["transcripts-dlq"]) as transcripts_dlq:
            for p in (serve, asr, policy):
                await p.start()
            async with stopped_at_exit(serve, asr, policy):
                await wait_healthy(serve_url, serve)
                assert not serve.events("asr_model_loaded") and not serve.events("policy_loaded")
                for member in (asr, policy):  # in the group before the room talks
                    await wait_for(partial(has_partitions, member), 60, "partitions assigned",
                                   member)
                started = time.monotonic()
                await asyncio.gather(*(
                    publish_file(f"{serve_url}/whip/{room.room_id}/{speaker}", path,
                                 token=TOKEN)
                    for speaker, path in room.speakers.items()))
                published = time.monotonic()

                def segment_ids() -> set[str]:
                    return {decode_segment(h, v).segment_id for h, v in segments.records}

                await wait_for(lambda: bool(segments.records) and set(
                    transcripts.transcript_segment_ids()) >= segment_ids(), 120,
                    "every segment transcribed", asr)
                await wait_for(lambda: sum(int(e["records"]) for e in policy.events(
                    "batch_committed")) >= len(transcripts.records), 60,
                    "every transcript judged and committed", policy)
                drained = time.monotonic()
                serve_metrics = await scrape(serve_url)
                asr_metrics = await scrape(asr_url)
                policy_metrics = await scrape(policy_url)
                await asyncio.sleep(0.5)  # let the watchers catch up
    finally:
        restrict_host_addresses(None)

    # Every expected alert exactly once after dedupe by alert id (= ce_id); nothing else.
    by_id: dict[str, dict[str, object]] = {}
    for headers, value in alerts.records:
        attrs, data = decode_record(headers, value)
        validate("alert", data)
        assert attrs["id"] == data["alert_id"]
        by_id[attrs["id"]] = data
    check = check_alerts(room, observed_from_events(by_id.values(), room.room_id))
    assert not check.missing, f"expected alerts missing: {check.missing}"
    assert not check.unexpected, f"alerts on benign/near-miss speech: {check.unexpected}"
    assert not check.duplicates, f"duplicate alerts: {check.duplicates}"
    assert len(by_id) == len(room.expected)
    assert not segments_dlq.records and not transcripts_dlq.records
    # serve: every second handed off, nothing shed; no model in the process.
    received = serve_metrics["roomwarden_asr_received_seconds_total"]
    assert received > 0
    assert serve_metrics["roomwarden_handoff_seconds_total"] == pytest.approx(received)
    assert not any(k.startswith("roomwarden_gap_seconds_total") and v
                   for k, v in serve_metrics.items())
    assert serve_metrics["roomwarden_asr_audio_seconds_total"] == 0
    assert asr_metrics["roomwarden_asr_audio_seconds_total"] == pytest.approx(received, abs=0.01)
    latency_n = policy_metrics["roomwarden_alert_latency_seconds_count"]
    latency_mean = policy_metrics["roomwarden_alert_latency_seconds_sum"] / latency_n
    assert latency_n >= len(room.expected)
    assert 0 < latency_mean < 30
    print(f"\ndistributed e2e: {len(segments.records)} segments, {len(transcripts.records)} "
          f"transcripts, {len(alerts.records)} alert records = {len(by_id)} after dedupe "
          f"({len(room.expected)} expected); end of speech -> alert acked, mean "
          f"{latency_mean:.2f} s over {latency_n:.0f}; room {published - started:.1f} s, "
          f"drained {drained - published:.1f} s after it, test {time.monotonic() - t0:.1f} s")
