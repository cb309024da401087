"""Gaps through the composition root: Pipeline.publish_gap (metrics + gap record on the sink),
the Janus settings, and the Janus tap started by ``serving`` (against a fake Janus)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from alerts.envelope import decode_record
from alerts.schemas import validate, validate_attributes
from ingest.frames import StreamGap
from policy.engine import PolicyEngine
from policy.rules import RulePack, default_pack_path
from roomwarden.app import Running, serving
from roomwarden.metrics import Metrics
from roomwarden.runner import Pipeline, Topics
from roomwarden.settings import load_settings
from tests.fake_janus import FakeJanus
from tests.fakes_asr import FakeRecognizer
from tests.unit.test_runner import FakeSink, sample


def _pipeline(sink: FakeSink, metrics: Metrics) -> Pipeline:
    return Pipeline(recognizer=FakeRecognizer(), policy=PolicyEngine(
        RulePack.load(default_pack_path())), sink=sink, metrics=metrics,
        source="/roomwarden/test", topics=Topics(gaps="gaps.t"))


async def test_publish_gap_counts_and_sends_a_valid_record() -> None:
    sink, metrics = FakeSink(), Metrics()
    pipeline = _pipeline(sink, metrics)
    gap = StreamGap("1234", "", 1000.0, 1003.5, "janus_unreachable", "janus")
    await pipeline.publish_gap(gap)
    await pipeline.publish_gap(StreamGap("1234", "77", 1001.0, 1002.0, "track_died", "janus"))
    await pipeline.drain()
    assert [r.topic for r in sink.records] == ["gaps.t", "gaps.t"]
    attrs, data = decode_record(sink.records[0].headers, sink.records[0].value)
    validate_attributes(attrs)
    validate("gap", data)
    assert data["gap_id"] == gap.gap_id and data["duration_s"] == 3.5
    assert sample(metrics, "roomwarden_gaps_total", reason="janus_unreachable") == 1
    assert sample(metrics, "roomwarden_gap_seconds_total", reason="janus_unreachable") == 3.5
    assert sample(metrics, "roomwarden_gap_seconds_total", reason="track_died") == 1.0
    assert sample(metrics, "roomwarden_kafka_records_acked_total", topic="gaps.t") == 2


def test_janus_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.janus.url is None and settings.janus.rooms is None
    assert settings.kafka.gaps_topic == "roomwarden.gaps.v1"
    monkeypatch.setenv("ROOMWARDEN_JANUS__URL", "http://janus:8088/janus")
    monkeypatch.setenv("ROOMWARDEN_JANUS__ROOMS", "[1234, 5678]")
    monkeypatch.setenv("ROOMWARDEN_JANUS__POLL_INTERVAL_S", "0.5")
    settings = load_settings()
    assert settings.janus.url == "http://janus:8088/janus"
    assert settings.janus.rooms == [1234, 5678]
    assert settings.janus.poll_interval_s == 0.5


async def test_serving_runs_the_janus_tap_and_publishes_its_gaps(tmp_path: Path) -> None:
    sink, metrics = FakeSink(), Metrics()
    async with FakeJanus() as fake:
        fake.rooms = {42: []}
        settings = load_settings(janus={"url": fake.url, "poll_interval_s": 0.1})
        running = Running(settings, metrics, _pipeline(sink, metrics), None,
                          FakeRecognizer())  # type: ignore[arg-type]
        async with serving(running, "127.0.0.1", 0) as url, aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 5
            while running.janus is None or 42 not in running.janus.taps:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            async with http.get(f"{url}/healthz") as resp:
                health = await resp.json()
            assert health["janus_connected"] is True and health["janus_rooms"] == [42]
            assert sample(metrics, "roomwarden_janus_connected") == 1.0
            fake.forget_sessions()  # Janus restarted under the tap
            while not sink.records:
                assert time.monotonic() < deadline + 5
                await asyncio.sleep(0.05)
    _, data = decode_record(sink.records[0].headers, sink.records[0].value)
    assert (data["room_id"], data["reason"]) == ("42", "session_lost")
    assert sample(metrics, "roomwarden_gaps_total", reason="session_lost") == 1
