"""JanusRoomTap's supervision against a fake Janus (HTTP on 127.0.0.1, no media): room
discovery, rooms vanishing and failing alone, session loss → reconnect → outage gaps, and a
server answering garbage."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest
import structlog

from ingest.frames import SpeechSegment, StreamGap
from ingest.janus_rooms import JanusRoomTap
from tests.fake_janus import FakeJanus

pytestmark = pytest.mark.timeout(30)
POLL = 0.1


@pytest.fixture(autouse=True)
def _fresh_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fresh logger proxies for the modules under test: once logging was configured (another
    test ran the CLI), cached loggers would bypass ``capture_logs``. Restored afterwards."""
    import ingest.janus_rooms
    import ingest.janus_videoroom

    for module in (ingest.janus_rooms, ingest.janus_videoroom):
        monkeypatch.setattr(module, "log", structlog.get_logger(module.__name__))


async def _until(cond: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def _tap(fake: FakeJanus, gaps: list[StreamGap], **kw: object) -> JanusRoomTap:
    return JanusRoomTap(fake.url, asyncio.Queue[SpeechSegment](), poll_interval_s=POLL,
                        on_gap=gaps.append, backoff_initial_s=0.05, backoff_max_s=0.2,
                        request_timeout_s=2.0, rng=random.Random(1), **kw)  # type: ignore[arg-type]


async def test_rooms_are_discovered_and_dropped_when_destroyed() -> None:
    gaps: list[StreamGap] = []
    async with FakeJanus() as fake:
        fake.rooms = {1: [], 2: []}
        with structlog.testing.capture_logs() as logs:
            async with _tap(fake, gaps) as tap:
                await _until(lambda: set(tap.taps) == {1, 2})
                assert tap.connected
                del fake.rooms[2]  # destroyed: listparticipants says 426, list omits it
                await _until(lambda: set(tap.taps) == {1})
                fake.rooms[3] = []
                await _until(lambda: set(tap.taps) == {1, 3})
    vanished = [e for e in logs if e["event"] == "janus_room_vanished"]
    assert [(e["room_id"], e["reason"]) for e in vanished][:1] in (
        [(2, "no such room")], [(2, "no longer listed")])
    assert not gaps  # a destroyed room is not a gap


async def test_configured_rooms_only_and_a_missing_one_is_logged_once() -> None:
    gaps: list[StreamGap] = []
    async with FakeJanus() as fake:
        fake.rooms = {1: [], 2: []}
        with structlog.testing.capture_logs() as logs:
            async with _tap(fake, gaps, rooms=[2, 9]) as tap:
                await _until(lambda: set(tap.taps) == {2})
                await asyncio.sleep(5 * POLL)
                fake.rooms[9] = []  # created later: picked up
                await _until(lambda: set(tap.taps) == {2, 9})
    assert [e["room_id"] for e in logs if e["event"] == "janus_room_missing"] == [9]


async def test_one_room_answering_garbage_does_not_stop_the_others() -> None:
    gaps: list[StreamGap] = []
    async with FakeJanus() as fake:
        fake.rooms = {1: [], 2: []}
        with structlog.testing.capture_logs() as logs:
            async with _tap(fake, gaps) as tap:
                await _until(lambda: set(tap.taps) == {1, 2})
                room1 = tap.taps[1]
                fake.room_faults[2] = "garbage"
                await _until(lambda: any(e["event"] == "janus_room_tap_failed"
                                         and e.get("room_id") == 2 for e in logs))
                assert tap.taps[1] is room1 and room1.error is None  # untouched
                fake.room_faults[2] = "error"
                await asyncio.sleep(5 * POLL)
                fake.room_faults.clear()
                await _until(lambda: set(tap.taps) == {1, 2} and tap.taps[2].error is None)
                assert tap.taps[1] is room1 and tap.connected
    polls = [e for e in logs if e["event"] == "janus_room_poll_failed"]
    assert any("not JSON" in e["error"] for e in polls), polls
    assert not gaps


async def test_session_lost_reconnects_and_reports_one_gap_per_room() -> None:
    gaps: list[StreamGap] = []
    async with FakeJanus() as fake:
        fake.rooms = {1: [], 2: []}
        async with _tap(fake, gaps) as tap:
            await _until(lambda: set(tap.taps) == {1, 2})
            first = tap.janus
            assert first is not None
            fake.forget_sessions()  # Janus restarted: the old session is unknown (458)
            await _until(lambda: tap.janus is not None and tap.janus is not first
                         and set(tap.taps) == {1, 2})
            await _until(lambda: len(gaps) == 2)
            assert tap.reconnects == 1
    assert sorted(g.room_id for g in gaps) == ["1", "2"]
    assert {(g.speaker_id, g.reason, g.source) for g in gaps} == {("", "session_lost", "janus")}
    assert all(0 <= g.duration_s < 2.0 for g in gaps)


async def test_unreachable_janus_gap_covers_the_outage() -> None:
    gaps: list[StreamGap] = []
    async with FakeJanus() as fake:
        fake.rooms = {7: []}
        async with _tap(fake, gaps) as tap:
            await _until(lambda: set(tap.taps) == {7})
            down_at = time.time()
            await fake.stop()  # connection refused from now on
            await _until(lambda: not tap.connected and not tap.taps)
            await asyncio.sleep(1.0)
            fake.forget_sessions()
            await fake.serve()
            up_at = time.time()
            await _until(lambda: len(gaps) == 1)
            assert set(tap.taps) == {7}
    gap = gaps[0]
    assert (gap.room_id, gap.speaker_id, gap.reason) == ("7", "", "janus_unreachable")
    # Starts at the first failed long poll (≤ one fake poll after the stop), ends once the
    # room is tapped again (≤ backoff cap + one discovery after the server is back).
    assert down_at - 0.05 <= gap.start_time <= down_at + 0.5
    assert up_at <= gap.end_time <= up_at + 0.6
    assert gap.duration_s == pytest.approx(up_at - down_at, abs=0.7)


@pytest.mark.parametrize("answer", ["html", "wrong_json"])
async def test_garbage_answers_are_logged_and_retried_without_crashing(answer: str) -> None:
    gaps: list[StreamGap] = []
    async with FakeJanus() as fake:
        fake.rooms = {5: []}
        fake.answer = answer
        with structlog.testing.capture_logs() as logs:
            async with _tap(fake, gaps) as tap:
                await _until(lambda: fake.requests.count("create") >= 4)
                assert not tap.connected and not tap.taps
                assert tap._task is not None and not tap._task.done()
                fake.answer = "ok"
                await _until(lambda: set(tap.taps) == {5})
    errors = [e["error"] for e in logs if e["event"] == "janus_unreachable"]
    assert errors and all(("not JSON" if answer == "html" else "not a Janus message") in e
                          for e in errors), errors
    # Backoff grows (jittered) up to the cap: attempts are not a busy loop.
    waits = [e["retry_in_s"] for e in logs if e["event"] == "janus_unreachable"]
    assert all(0.025 <= w <= 0.2 for w in waits) and max(waits) > 0.05, waits
    assert not gaps  # nothing was being tapped yet


async def _offer(*kinds: str, audio_codec: str = "audio/opus") -> str:
    from aiortc import RTCPeerConnection, RTCRtpSender

    pc = RTCPeerConnection()
    try:
        for kind in kinds:
            t = pc.addTransceiver(kind, direction="sendonly")
            if kind == "audio":
                caps = RTCRtpSender.getCapabilities("audio")
                t.setCodecPreferences([c for c in caps.codecs
                                       if c.mimeType.lower() == audio_codec])
        return (await pc.createOffer()).sdp
    finally:
        await pc.close()


async def test_publishers_without_opus_audio_are_refused_with_a_reason() -> None:
    from ingest.janus_videoroom import SubscriptionRefused, _audible_offer

    assert [m.kind for m in _audible_offer(1, await _offer("audio", "video")).media] == [
        "audio", "video"]
    with pytest.raises(SubscriptionRefused, match="sends no audio \\(only video\\)"):
        _audible_offer(2, await _offer("video"))
    with pytest.raises(SubscriptionRefused, match="audio/pcmu; only Opus"):
        _audible_offer(3, await _offer("audio", audio_codec="audio/pcmu"))
