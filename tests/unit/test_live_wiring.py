"""The live sources and sinks ``serve`` wires (fakes at the seams, no media): AudioBridge rooms
in the Janus tap, WHEP pullers restarted with gaps, in-room notices, and their settings."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

import ingest.janus_rooms
import ingest.whep_pull
from alerts.envelope import decode_record
from alerts.room_notice import RoomNoticeSink
from ingest.frames import SpeechSegment, StreamGap
from ingest.janus_rooms import JanusRoomTap
from ingest.whep import WhepError
from ingest.whep_pull import WhepPuller
from policy.engine import PolicyEngine
from policy.frames import Alert
from policy.rules import RulePack, default_pack_path
from roomwarden.app import Running, build_notices, serving
from roomwarden.metrics import Metrics
from roomwarden.runner import Pipeline, Topics
from roomwarden.settings import load_settings
from tests.conftest import build_alert, build_segment, build_transcript
from tests.fake_janus import FakeJanus
from tests.fakes_asr import FakeRecognizer
from tests.unit.test_runner import FakeSink, sample

pytestmark = pytest.mark.timeout(30)


async def _until(cond: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# --- settings ----------------------------------------------------------------------------------

def test_live_settings_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.janus.audiobridge_rooms == [] and s.whep.sources == []
    assert (s.notices.enabled, s.notices.min_severity, s.notices.cooldown_s,
            s.notices.janus_url) == (False, "high", 60.0, None)
    monkeypatch.setenv("ROOMWARDEN_JANUS__AUDIOBRIDGE_ROOMS", "[4321]")
    monkeypatch.setenv("ROOMWARDEN_WHEP__SOURCES", '[{"url": "http://sfu/whep/a", '
                       '"room_id": "stage", "speaker_id": "host", "token": "s3cret"}]')
    monkeypatch.setenv("ROOMWARDEN_NOTICES__ENABLED", "true")
    monkeypatch.setenv("ROOMWARDEN_NOTICES__MIN_SEVERITY", "medium")
    monkeypatch.setenv("ROOMWARDEN_NOTICES__COOLDOWN_S", "5")
    s = load_settings()
    assert s.janus.audiobridge_rooms == [4321]
    (src,) = s.whep.sources
    assert (src.url, src.room_id, src.speaker_id) == ("http://sfu/whep/a", "stage", "host")
    assert src.token is not None and src.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert (s.notices.enabled, s.notices.min_severity, s.notices.cooldown_s) == \
        (True, "medium", 5.0)


def test_notices_need_a_janus_url_and_default_to_janus_url() -> None:
    assert build_notices(load_settings(), Metrics()) is None  # disabled by default
    with pytest.raises(ValueError, match="notices.janus_url"):
        build_notices(load_settings(notices={"enabled": True}), Metrics())
    metrics = Metrics()
    sink = build_notices(load_settings(notices={"enabled": True},
                                       janus={"url": "http://j:8088/janus"}), metrics)
    assert sink is not None and sink.notifier.base_url == "http://j:8088/janus"  # type: ignore[attr-defined]
    assert sample(metrics, "roomwarden_room_notices_total", outcome="failed") == 0


# --- AudioBridge rooms in the Janus tap ----------------------------------------------------------

class FakeBridge:
    """Stands in for AudioBridgeTap (no media): records starts, ends on demand."""

    made: list[FakeBridge] = []
    fail_rooms: set[int] = set()

    def __init__(self, janus: Any, room: int, out: Any, **kw: Any) -> None:
        self.room = room
        self.ended = asyncio.Event()
        self.end_reason = "closed"
        self.closed = False
        FakeBridge.made.append(self)

    async def start(self) -> None:
        if self.room in FakeBridge.fail_rooms:
            raise ingest.janus_rooms.JanusError(485, "no such room")

    async def close(self) -> None:
        self.closed = True
        self.ended.set()

    def die(self, reason: str) -> None:
        self.end_reason = reason
        self.ended.set()


@pytest.fixture
def fake_bridges(monkeypatch: pytest.MonkeyPatch) -> type[FakeBridge]:
    FakeBridge.made, FakeBridge.fail_rooms = [], set()
    monkeypatch.setattr(ingest.janus_rooms, "AudioBridgeTap", FakeBridge)
    return FakeBridge


async def test_audiobridge_rooms_are_tapped_rejoined_and_share_outages(
        fake_bridges: type[FakeBridge]) -> None:
    gaps: list[StreamGap] = []
    async with FakeJanus() as fake:
        fake.rooms = {42: []}
        fake_bridges.fail_rooms = {7}
        tap = JanusRoomTap(fake.url, asyncio.Queue[SpeechSegment](), rooms=[42],
                           audiobridge_rooms=[4321, 7], poll_interval_s=0.1,
                           on_gap=gaps.append, backoff_initial_s=0.05, backoff_max_s=0.2,
                           rng=random.Random(1))
        async with tap:
            await _until(lambda: 4321 in tap.bridges and 42 in tap.taps)
            assert 7 not in tap.bridges  # failing room isolated, retried at each poll
            first = tap.bridges[4321]
            first.die("room_destroyed")  # type: ignore[attr-defined]
            await _until(lambda: 4321 in tap.bridges and tap.bridges[4321] is not first)
            assert first.closed  # type: ignore[attr-defined]
            await _until(lambda: bool(gaps))
            assert (gaps[0].room_id, gaps[0].speaker_id, gaps[0].reason) == \
                ("4321", "", "track_died")
            gaps.clear()
            fake.forget_sessions()  # Janus restarted: one outage gap per tapped room
            await _until(lambda: len(gaps) >= 2 and tap.connected and 4321 in tap.bridges)
            assert sorted((g.room_id, g.reason) for g in gaps) == \
                [("42", "session_lost"), ("4321", "session_lost")]
        assert all(b.closed for b in fake_bridges.made if b.room == 4321)
        assert tap.bridges == {}


# --- WHEP pullers ------------------------------------------------------------------------------

class FakeSource:
    """Stands in for WhepSource: scripted start failures, ends on demand."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.closed = asyncio.Event()
        self.stopped = False

    async def start(self) -> None:
        if self.fail:
            raise WhepError(503, "not yet")

    async def wait_closed(self) -> str:
        await self.closed.wait()
        return "track_ended"

    async def stop(self) -> None:
        self.stopped = True
        self.closed.set()


async def test_whep_puller_restarts_and_reports_the_time_down() -> None:
    script = [True, True, False, False, True]  # fail, fail, up, (ends) up, then failing
    made: list[FakeSource] = []

    def make() -> FakeSource:
        made.append(FakeSource(script.pop(0) if script else True))
        return made[-1]

    gaps: list[StreamGap] = []
    puller = WhepPuller("http://x/whep", "stage", "host", asyncio.Queue(), on_gap=gaps.append,
                        backoff_initial_s=0.02, backoff_max_s=0.05,
                        make_source=make, rng=random.Random(1))  # type: ignore[arg-type]
    await puller.start()
    await _until(lambda: puller.connected)
    assert len(gaps) == 1 and gaps[0].reason == "whep_unavailable"  # the two failed starts
    assert (gaps[0].room_id, gaps[0].speaker_id, gaps[0].source) == ("stage", "host", "whep")
    made[-1].closed.set()  # the stream ended under us
    await _until(lambda: len(gaps) == 2 and puller.connected)
    assert puller.restarts == 1
    made[-1].closed.set()
    await _until(lambda: len(made) >= 6)  # down again, retrying
    await puller.close()
    assert len(gaps) == 3 and gaps[-1].end_time >= gaps[-1].start_time  # closed while down


async def test_serving_runs_whep_sources_and_publishes_their_gaps(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing(FakeSource):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(fail=True)

    monkeypatch.setattr(ingest.whep_pull, "WhepSource", Refusing)
    sink, metrics = FakeSink(), Metrics()
    settings = load_settings(whep={"sources": [{"url": "http://127.0.0.1:9/whep",
                                                "room_id": "stage", "speaker_id": "host"}]})
    pipeline = Pipeline(recognizer=FakeRecognizer(), policy=PolicyEngine(
        RulePack.load(default_pack_path())), sink=sink, metrics=metrics,
        source="/roomwarden/test", topics=Topics(gaps="gaps.t"))
    running = Running(settings, metrics, pipeline, None, FakeRecognizer())  # type: ignore[arg-type]
    async with serving(running, "127.0.0.1", 0):
        assert [p.room_id for p in running.whep] == ["stage"]
        assert sample(metrics, "roomwarden_whep_sources_up") == 0.0
        await asyncio.sleep(0.2)
    await pipeline.drain()
    _, data = decode_record(sink.records[0].headers, sink.records[0].value)
    assert (data["room_id"], data["speaker_id"], data["reason"]) == \
        ("stage", "host", "whep_unavailable")


# --- in-room notices ---------------------------------------------------------------------------

class FakeNotifier:
    def __init__(self, fail: bool = False, delay: float = 0.0) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail, self.delay, self.closed = fail, delay, False

    async def notify(self, room_id: str, text: str) -> None:
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("janus down")
        self.sent.append((room_id, text))

    async def close(self) -> None:
        self.closed = True


def _alert(room: str = "1234", severity: str = "high", confident: bool = True) -> Alert:
    t = build_transcript(build_segment(room=room),
                         confidence_class="confident" if confident else "low")
    return dataclasses.replace(build_alert(t), severity=severity)  # type: ignore[arg-type]


async def test_notice_sink_filters_cools_down_and_never_blocks() -> None:
    outcomes: list[str] = []
    now = [100.0]
    notifier = FakeNotifier(delay=0.2)
    sink = RoomNoticeSink(notifier, min_severity="high", cooldown_s=60,
                          on_outcome=outcomes.append, clock=lambda: now[0])
    started = time.monotonic()
    assert sink.submit(_alert(confident=False)) == "low_confidence"
    assert sink.submit(_alert(severity="medium")) == "below_severity"
    assert sink.submit(_alert()) is None  # on its way
    assert sink.submit(_alert(severity="critical")) == "cooldown"  # same room, 0 s later
    assert sink.submit(_alert(room="99")) is None  # another room has its own cooldown
    assert time.monotonic() - started < 0.1  # a slow Janus does not hold the caller
    now[0] += 61
    assert sink.submit(_alert()) is None
    await sink.close()
    assert notifier.closed and [r for r, _ in notifier.sent] == ["1234", "99", "1234"]
    assert notifier.sent[0][1].startswith("RoomWarden: alice may have broken the room rules")
    assert sorted(outcomes) == ["below_severity", "cooldown", "low_confidence", "sent", "sent",
                                "sent"]


async def test_notice_sink_counts_a_failing_janus() -> None:
    metrics = Metrics()
    sink = RoomNoticeSink(FakeNotifier(fail=True), cooldown_s=0,
                          on_outcome=lambda o: metrics.room_notices.labels(outcome=o).inc())
    sink.submit(_alert())
    sink.submit(_alert())
    await sink.close()
    assert sample(metrics, "roomwarden_room_notices_total", outcome="failed") == 2
