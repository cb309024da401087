"""JanusRoomTap against a real Janus: several rooms and speakers at once, a speaker leaving and
rejoining, Janus SIGKILLed and restarted mid-room, a room destroyed while tapped and a
publisher without audio.

Janus, the publishers and the tap run inside a network namespace of the test's own
(:mod:`tests.janus_harness`); everything loop-bound (queues, the tap) lives on the namespace
thread's loop, so each scenario collects its results there and returns them. Garbage answers
from a "Janus" are covered against a fake on 127.0.0.1 in ``tests/unit/test_janus_rooms.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

from ingest.frames import SpeechSegment, StreamGap
from ingest.ice import restrict_host_addresses
from ingest.janus_api import JanusError, JanusSession
from ingest.janus_publisher import publish_file_to_videoroom
from ingest.janus_rooms import JanusRoomTap
from ingest.janus_videoroom import VIDEOROOM
from tests.janus_harness import JanusNetns, janus_in_netns

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SAMPLES = Path(__file__).resolve().parents[2] / "roomwarden" / "samples"
SCRIPT = json.loads((SAMPLES / "room.json").read_text())
POLL = 0.3


@pytest.fixture(autouse=True)
def _fresh_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fresh logger proxies for the modules under test: once logging was configured (another
    test ran the CLI), cached loggers would bypass ``capture_logs``. Restored afterwards."""
    import ingest.janus_rooms
    import ingest.janus_videoroom

    for module in (ingest.janus_rooms, ingest.janus_videoroom):
        monkeypatch.setattr(module, "log", structlog.get_logger(module.__name__))


def _clip(dest: Path, speaker: str, nth: int, lead_s: float = 2.0,
          tail_s: float = 1.5) -> tuple[Path, float]:
    """The ``nth`` utterance of ``speaker`` with ``lead_s`` of silence before and ``tail_s``
    after (the sample tracks are silent outside their speaker's lines); (clip, speech s)."""
    utt = [u for u in SCRIPT["utterances"] if u["speaker"] == speaker][nth]
    with wave.open(str(SAMPLES / SCRIPT["speakers"][speaker]), "rb") as src:
        rate = src.getframerate()
        begin = max(0, round((utt["start_s"] - lead_s) * rate))
        src.setpos(begin)
        frames = src.readframes(round((utt["end_s"] + tail_s) * rate) - begin)
        params = src.getparams()
    clip = dest / f"{speaker}_{nth}.wav"
    with wave.open(str(clip), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return clip, utt["end_s"] - utt["start_s"]


async def _run(jn: JanusNetns, scenario: Callable[..., Awaitable[dict[str, Any]]],
               *args: Any) -> dict[str, Any]:
    restrict_host_addresses([jn.client_addr])  # aioice is process-global
    try:
        return await asyncio.wait_for(jn.run_in_netns(scenario, *args), 60)
    except BaseException:
        print(jn.log_tail())
        raise
    finally:
        restrict_host_addresses(None)


async def _until(cond: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _admin(base_url: str, *rooms: int) -> Any:
    """A Janus session with a VideoRoom handle; creates ``rooms`` (and ignores leftovers)."""
    async with aiohttp.ClientSession() as http, \
            await JanusSession.create(http, base_url) as janus:
        handle = await janus.attach(VIDEOROOM)
        for room in rooms:
            await handle.send({"request": "create", "room": room, "publishers": 6,
                               "audiocodec": "opus", "description": f"room {room}"})
        yield handle


def _tap(base_url: str, out: asyncio.Queue[SpeechSegment], gaps: list[StreamGap],
         **kw: Any) -> JanusRoomTap:
    return JanusRoomTap(base_url, out, poll_interval_s=POLL, on_gap=gaps.append,
                        backoff_initial_s=0.2, backoff_max_s=1.0, rng=random.Random(7), **kw)


def _drain(out: asyncio.Queue[SpeechSegment]) -> list[SpeechSegment]:
    return [out.get_nowait() for _ in range(out.qsize())]


async def _idle(tap: JanusRoomTap) -> None:
    """Wait until no subscription is left (every publisher left and was flushed)."""
    await _until(lambda: not any(t.subscriptions for t in tap.taps.values()), 10,
                 "subscriptions to end")


# --- several rooms, several speakers, all at once -----------------------------------------

async def _two_rooms(base_url: str, clips: dict[str, Path]) -> dict[str, Any]:
    out: asyncio.Queue[SpeechSegment] = asyncio.Queue()
    gaps: list[StreamGap] = []
    feeds: dict[str, int] = {}
    async with _admin(base_url, 1111, 2222), _tap(base_url, out, gaps) as tap:
        await _until(lambda: {1111, 2222} <= set(tap.taps), 5, "rooms to be tapped")
        plan = [("alice", 1111, "Alice A."), ("bob", 1111, "Bob B."), ("carol", 2222,
                                                                        "Carol C.")]
        await asyncio.gather(*(publish_file_to_videoroom(
            base_url, room, clips[who], name,
            on_joined=lambda feed, who=who: feeds.__setitem__(who, feed))
            for who, room, name in plan))
        await _idle(tap)
        displays = {room: dict(t.displays) for room, t in tap.taps.items()}
    return {"feeds": feeds, "segments": _drain(out), "gaps": gaps, "displays": displays}


async def test_speakers_in_two_rooms_are_attributed_right(tmp_path: Path) -> None:
    clips = {who: _clip(tmp_path, who, 0)[0] for who in ("alice", "bob", "carol")}
    async with janus_in_netns("rwrooms") as jn:
        res = await _run(jn, _two_rooms, jn.base_url, clips)
    feeds, segments = res["feeds"], res["segments"]
    expected = {str(feeds["alice"]): ("1111", "Alice A."), str(feeds["bob"]): ("1111", "Bob B."),
                str(feeds["carol"]): ("2222", "Carol C.")}
    assert len(set(expected)) == 3
    heard = {s.speaker_id for s in segments}
    assert heard == set(expected), (heard, expected)
    for seg in segments:
        assert (seg.room_id, seg.speaker_name) == expected[seg.speaker_id], seg
        assert seg.duration_s > 0.5
    assert res["displays"][1111] == {str(feeds["alice"]): "Alice A.",
                                     str(feeds["bob"]): "Bob B."}
    assert res["displays"][2222] == {str(feeds["carol"]): "Carol C."}
    assert not res["gaps"]


# --- leaving and rejoining -----------------------------------------------------------------

async def _rejoin(base_url: str, clip: Path) -> dict[str, Any]:
    out: asyncio.Queue[SpeechSegment] = asyncio.Queue()
    gaps: list[StreamGap] = []
    async with _admin(base_url, 3333), _tap(base_url, out, gaps, rooms=[3333]) as tap:
        await _until(lambda: 3333 in tap.taps, 5, "room to be tapped")
        first = await publish_file_to_videoroom(base_url, 3333, clip, "Bob")
        await _idle(tap)
        second = await publish_file_to_videoroom(base_url, 3333, clip, "Bob again")
        await _idle(tap)
        third = await publish_file_to_videoroom(base_url, 3333, clip, "Bob", feed_id=first)
        await _idle(tap)
    return {"feeds": [first, second, third], "segments": _drain(out), "gaps": gaps}


async def test_a_speaker_who_leaves_and_rejoins_is_heard_again(tmp_path: Path) -> None:
    clip, _ = _clip(tmp_path, "bob", 0)
    async with janus_in_netns("rwrejoin") as jn:
        res = await _run(jn, _rejoin, jn.base_url, clip)
    first, second, third = res["feeds"]
    assert first != second and third == first  # a new id, then the same id again
    by_stream: dict[str, list[SpeechSegment]] = {}
    for seg in res["segments"]:
        by_stream.setdefault(seg.stream_id, []).append(seg)
    speakers = sorted(segs[0].speaker_id for segs in by_stream.values())
    assert speakers == sorted([str(first), str(first), str(second)]), by_stream
    names = {(s.speaker_id, s.speaker_name) for s in res["segments"]}
    assert names == {(str(first), "Bob"), (str(second), "Bob again")}
    assert not res["gaps"]  # leaving is not a gap


# --- Janus killed and restarted --------------------------------------------------------------

async def _restart(base_url: str, restart: Callable[[], Awaitable[tuple[float, float]]],
                   clip_a: Path, clip_b: Path, speech_a_s: float) -> dict[str, Any]:
    out: asyncio.Queue[SpeechSegment] = asyncio.Queue()
    gaps: list[StreamGap] = []
    res: dict[str, Any] = {}
    joined = asyncio.Event()
    # Room 1234 is in Janus's config file, so it exists again after the restart.
    async with _tap(base_url, out, gaps) as tap:
        await _until(lambda: 1234 in tap.taps, 5, "room to be tapped")
        speaking = asyncio.create_task(publish_file_to_videoroom(
            base_url, 1234, clip_a, "Alice", on_joined=lambda f: (res.__setitem__("a", f),
                                                                  joined.set())))
        await joined.wait()
        await _until(lambda: bool(tap.taps[1234].subscriptions), 5, "subscription to Alice")
        # Kill mid-utterance: 2 s of lead, then ~half of her line.
        await asyncio.sleep(2.0 + speech_a_s / 2)
        res["killed"], res["answering"] = await restart()
        with contextlib.suppress(JanusError):
            await speaking
        await _until(lambda: tap.connected and 1234 in tap.taps, 10, "tap to reconnect")
        res["reconnected"] = time.time()
        res["segments_before"] = _drain(out)
        await _until(lambda: bool(gaps), 5, "the outage gap")
        res["b"] = await publish_file_to_videoroom(base_url, 1234, clip_b, "Bob")
        await _idle(tap)
        res["reconnects"] = tap.reconnects
    res["segments_after"] = _drain(out)
    res["gaps"] = gaps
    return res


async def test_janus_killed_and_restarted_mid_room(tmp_path: Path) -> None:
    clip_a, speech_a = _clip(tmp_path, "alice", 3)  # her longest line (~4 s)
    clip_b, _ = _clip(tmp_path, "bob", 0)
    main = asyncio.get_running_loop()
    async with janus_in_netns("rwrestart") as jn:

        async def restart() -> tuple[float, float]:
            # Called on the namespace thread; Janus is a subprocess of the main loop.
            return await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(jn.restart(down_s=1.5), main))

        res = await _run(jn, _restart, jn.base_url, restart, clip_a, clip_b, speech_a)
    killed, answering = res["killed"], res["answering"]
    print(f"outage {answering - killed:.2f} s; tap heard the room again "
          f"{res['reconnected'] - answering:.2f} s after Janus answered")
    # What Alice said before the crash was flushed when the session was lost.
    before = [s for s in res["segments_before"] if s.speaker_id == str(res["a"])]
    assert before, res["segments_before"]
    assert before[-1].end_time <= killed + 0.5
    # New speech after the restart is moderated.
    after = [s for s in res["segments_after"] if s.speaker_id == str(res["b"])]
    assert after and all(s.room_id == "1234" and s.speaker_name == "Bob" for s in after)
    assert res["reconnects"] == 1
    # One gap for the room, covering the outage.
    gaps = [g for g in res["gaps"] if g.speaker_id == ""]
    assert len(gaps) == 1, res["gaps"]
    gap = gaps[0]
    assert (gap.room_id, gap.reason, gap.source) == ("1234", "janus_unreachable", "janus")
    print(f"gap starts {gap.start_time - killed:+.3f} s from the kill, ends "
          f"{gap.end_time - answering:+.3f} s from Janus answering; "
          f"{gap.duration_s:.2f} s for a {answering - killed:.2f} s outage")
    assert killed - 0.2 <= gap.start_time <= killed + 0.5
    assert answering <= gap.end_time <= answering + 2.0  # backoff cap 1 s + one discovery
    assert gap.duration_s == pytest.approx(answering - killed, abs=2.0)


# --- bad input: a room destroyed while tapped, a publisher without audio ---------------------

async def _publish_video_only(base_url: str, room: int, stop: asyncio.Event,
                              joined: Callable[[int], None]) -> None:
    """A publisher sending VP8 video and no audio (aiortc's test pattern)."""
    pc = RTCPeerConnection()
    try:
        async with aiohttp.ClientSession() as http, \
                await JanusSession.create(http, base_url) as janus:
            handle = await janus.attach(VIDEOROOM)
            reply = await handle.send({"request": "join", "ptype": "publisher", "room": room,
                                       "display": "Camera only"})
            joined(int(reply.data["id"]))
            pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            answer = await handle.send({"request": "publish", "audio": False, "video": True},
                                       jsep={"type": "offer", "sdp": pc.localDescription.sdp})
            assert answer.jsep is not None
            await pc.setRemoteDescription(RTCSessionDescription(**answer.jsep))
            await stop.wait()
    finally:
        await pc.close()


async def _bad_input(base_url: str, clip_long: Path, clip: Path) -> dict[str, Any]:
    out: asyncio.Queue[SpeechSegment] = asyncio.Queue()
    gaps: list[StreamGap] = []
    res: dict[str, Any] = {}
    stop_video = asyncio.Event()
    with structlog.testing.capture_logs() as logs:
        async with _admin(base_url, 4444, 5555) as admin, \
                _tap(base_url, out, gaps, rooms=[4444, 5555]) as tap:
            await _until(lambda: {4444, 5555} <= set(tap.taps), 5, "rooms to be tapped")
            video = asyncio.create_task(_publish_video_only(
                base_url, 4444, stop_video, lambda f: res.__setitem__("video", f)))
            doomed = asyncio.create_task(publish_file_to_videoroom(
                base_url, 5555, clip_long, "Carol", on_joined=lambda f: res.__setitem__("c", f)))
            await _until(lambda: bool(tap.taps[5555].subscriptions), 10, "subscription to Carol")
            await _until(lambda: bool(tap.taps[4444].refused), 10, "the video-only refusal")
            await admin.send({"request": "destroy", "room": 5555})
            res["destroyed"] = time.time()
            await _until(lambda: 5555 not in tap.taps, 5, "the destroyed room to be dropped")
            res["a"] = await publish_file_to_videoroom(base_url, 4444, clip, "Alice")
            await _idle(tap)
            res["refused"] = dict(tap.taps[4444].refused)
            stop_video.set()
            await video
            with contextlib.suppress(JanusError):
                await doomed
    res["segments"], res["gaps"] = _drain(out), gaps
    res["logs"] = [e for e in logs if e["event"] in ("janus_room_vanished",
                                                     "janus_subscription_refused")]
    return res


async def test_destroyed_room_and_audioless_publisher_do_not_stop_the_rest(
        tmp_path: Path) -> None:
    clip_long, _ = _clip(tmp_path, "carol", 0, lead_s=2.0, tail_s=8.0)
    clip, _ = _clip(tmp_path, "alice", 0)
    async with janus_in_netns("rwbad") as jn:
        res = await _run(jn, _bad_input, jn.base_url, clip_long, clip)
    vanished = [e for e in res["logs"] if e["event"] == "janus_room_vanished"]
    assert [(e["room_id"], e["reason"]) for e in vanished] == [(5555, "no such room")]
    refused = [e for e in res["logs"] if e["event"] == "janus_subscription_refused"]
    assert [e["feed"] for e in refused] == [res["video"]]  # refused once, not every poll
    assert "no audio" in res["refused"][res["video"]]
    alice = [s for s in res["segments"] if s.speaker_id == str(res["a"])]
    assert alice and all(s.room_id == "4444" for s in alice)
    assert not any(s.speaker_id == str(res["video"]) for s in res["segments"])
    assert not res["gaps"]  # a destroyed room is not an outage


# --- a subscription's media dies under a live publisher --------------------------------------

async def _track_dies(base_url: str, clip: Path) -> dict[str, Any]:
    out: asyncio.Queue[SpeechSegment] = asyncio.Queue()
    gaps: list[StreamGap] = []
    res: dict[str, Any] = {}
    async with _admin(base_url, 6666), _tap(base_url, out, gaps, rooms=[6666]) as tap:
        await _until(lambda: 6666 in tap.taps, 5, "room to be tapped")
        speaking = asyncio.create_task(publish_file_to_videoroom(
            base_url, 6666, clip, "Bob", on_joined=lambda f: res.__setitem__("b", f)))
        room = tap.taps[6666]
        await _until(lambda: any(s.session.connected and s.session.audio_s > 0.5
                                 for s in room.subscriptions.values()), 10, "Bob's audio")
        first = next(iter(room.subscriptions.values()))
        # The tap's side of the media dies (as when its connection breaks): not a leave.
        res["died"] = time.time()
        await first.session.pc.close()
        await _until(lambda: bool(gaps), 5, "the track_died gap")
        res["resubscribed"] = room.subscriptions[res["b"]] is not first
        await speaking
        await _idle(tap)
    res["gaps"], res["segments"] = gaps, _drain(out)
    return res


async def test_a_dead_track_under_a_live_publisher_is_a_speaker_gap(tmp_path: Path) -> None:
    clip, _ = _clip(tmp_path, "bob", 0, lead_s=1.5, tail_s=1.5)
    async with janus_in_netns("rwdead") as jn:
        res = await _run(jn, _track_dies, jn.base_url, clip)
    assert res["resubscribed"]
    [gap] = res["gaps"]
    assert (gap.room_id, gap.speaker_id, gap.reason) == ("6666", str(res["b"]), "track_died")
    assert res["died"] - 0.2 <= gap.start_time <= res["died"] + 0.05
    assert gap.duration_s < 3 * POLL + 1.0, gap  # one poll to notice, then a new subscription
    print(f"track_died gap {gap.duration_s:.2f} s")


# --- bad input: a publisher whose audio is not Opus ------------------------------------------

async def _pcmu_publisher(base_url: str, clip: Path) -> dict[str, Any]:
    out: asyncio.Queue[SpeechSegment] = asyncio.Queue()
    gaps: list[StreamGap] = []
    res: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http, \
            await JanusSession.create(http, base_url) as janus:
        admin = await janus.attach(VIDEOROOM)
        # A room that forces G.711: the publisher (aiortc offers Opus, PCMU, PCMA) is accepted
        # by Janus with PCMU, which RoomWarden does not decode.
        await admin.send({"request": "create", "room": 6666, "publishers": 4,
                          "audiocodec": "pcmu", "description": "g711 room"})
        with structlog.testing.capture_logs() as logs:
            async with _tap(base_url, out, gaps, rooms=[6666]) as tap:
                await _until(lambda: 6666 in tap.taps, 5, "the room to be tapped")
                speaking = asyncio.create_task(
                    publish_file_to_videoroom(base_url, 6666, clip, "Gee Seven"))
                await _until(lambda: bool(tap.taps[6666].refused), 10, "the refusal")
                res["refused"] = dict(tap.taps[6666].refused)
                res["feed"] = await speaking
                await _idle(tap)
        await admin.send({"request": "destroy", "room": 6666})
    res["segments"], res["gaps"] = _drain(out), gaps
    res["logs"] = [e for e in logs if e["event"] == "janus_subscription_refused"]
    return res


async def test_a_publisher_with_an_unsupported_codec_is_refused_with_a_reason(
        tmp_path: Path) -> None:
    clip, _ = _clip(tmp_path, "bob", 0)
    async with janus_in_netns("rwcodec") as jn:
        res = await _run(jn, _pcmu_publisher, jn.base_url, clip)
    reason = res["refused"].get(res["feed"], "")
    assert "pcmu" in reason and "only Opus" in reason, res["refused"]
    assert [e["feed"] for e in res["logs"]] == [res["feed"]]  # logged once, not every poll
    assert not res["segments"] and not res["gaps"]
