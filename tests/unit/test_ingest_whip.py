"""WHIP endpoint and publisher over real aiortc, on 127.0.0.1 only.

Every peer connection here has no ICE servers and host candidates restricted to 127.0.0.1, so
no packet leaves the loopback interface.
"""

from __future__ import annotations

import asyncio
import re
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection

import ingest.stream_session
from ingest.errors import IngestError, WhipError
from ingest.frames import SAMPLE_RATE, SpeechSegment
from ingest.ice import host_addresses_restricted, restrict_host_addresses
from ingest.vad import VadParams
from ingest.whip import WhipEndpoint
from ingest.whip_client import publish_file

TOKEN = "s3cret-token"
CARDS = Path(__file__).resolve().parents[3] / "shared/evaldata/en_speech/pocketsphinx/cards"


@pytest.fixture(autouse=True)
def loopback_only() -> Any:
    restrict_host_addresses(["127.0.0.1"])
    yield
    restrict_host_addresses(None)
    assert not host_addresses_restricted()


@dataclass
class Server:
    endpoint: WhipEndpoint
    base: str
    queue: asyncio.Queue[SpeechSegment]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, name: str, within_s: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least one ``name`` event has been emitted; return them all."""
        async with asyncio.timeout(within_s):
            while not self.named(name):
                self.changed.clear()
                await self.changed.wait()
        return self.named(name)

    def url(self, room: str = "room-1", speaker: str = "alice") -> str:
        return f"{self.base}/whip/{room}/{speaker}"

    def named(self, name: str) -> list[dict[str, Any]]:
        return [f for n, f in self.events if n == name]


MakeServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def make_server() -> AsyncIterator[MakeServer]:
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def make(**kwargs: Any) -> Server:
        queue: asyncio.Queue[SpeechSegment] = asyncio.Queue()
        events: list[tuple[str, dict[str, Any]]] = []
        changed = asyncio.Event()

        def on_event(name: str, fields: dict[str, Any]) -> None:
            events.append((name, fields))
            changed.set()

        kwargs.setdefault("token", TOKEN)
        kwargs.setdefault("vad", VadParams())
        endpoint = WhipEndpoint(queue, on_event=on_event, **kwargs)
        app = web.Application()
        endpoint.add_to(app)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]

        async def cleanup() -> None:
            await endpoint.close()
            await runner.cleanup()

        cleanups.append(cleanup)
        return Server(endpoint, f"http://127.0.0.1:{port}", queue, events, changed)

    yield make
    for cleanup in cleanups:
        await cleanup()


async def make_offer(*kinds: str, direction: str = "sendonly") -> str:
    """An aiortc offer (complete, with candidates) for the given media kinds."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for kind in kinds:
        if kind == "data":
            pc.createDataChannel("chat")
        else:
            pc.addTransceiver(kind, direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def only_codecs(sdp: str, keep: dict[str, str]) -> str:
    """Rewrite the audio m-line to offer only ``keep`` (payload type -> rtpmap name)."""
    sdp = re.sub(r"^(m=audio \d+ \S+) [\d ]+$", lambda m: f"{m[1]} {' '.join(keep)}", sdp,
                 flags=re.M)
    return "".join(line for line in sdp.splitlines(keepends=True)
                   if not line.startswith("a=rtpmap:") or line.split()[0][9:] in keep)


async def post(url: str, body: str | bytes, *, token: str | None = TOKEN,
               content_type: str = "application/sdp") -> tuple[int, str, Any]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        return r.status, await r.text(), r.headers


async def test_options_advertises_sdp(make_server: MakeServer) -> None:
    server = await make_server()
    async with aiohttp.ClientSession() as http, http.options(server.url()) as r:
        assert r.status == 204 and r.headers["Accept-Post"] == "application/sdp"


async def test_answer_is_opus_recvonly_on_loopback_and_delete_ends_it(
        make_server: MakeServer) -> None:
    server = await make_server()
    status, answer, headers = await post(server.url(), await make_offer("audio"))
    assert status == 201, answer
    assert headers["Content-Type"].startswith("application/sdp")
    location = headers["Location"]
    assert re.fullmatch(r"/whip/room-1/alice/[0-9a-f]{32}", location)
    assert headers["ETag"] == f'"{location.rsplit("/", 1)[1]}"'
    candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
    assert candidates and all(line.split()[4] == "127.0.0.1" for line in candidates)
    assert "a=recvonly" in answer and "opus/48000/2" in answer and "PCMU" not in answer
    assert server.endpoint.session_count == 1
    async with aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with http.delete(server.base + location) as r:
            assert r.status == 401  # DELETE needs the token too
        async with http.delete(server.base + location, headers=auth) as r:
            assert r.status == 200
        async with http.delete(server.base + location, headers=auth) as r:
            assert r.status == 404
    assert server.endpoint.session_count == 0
    assert [n for n, _ in server.events] == ["session_started", "session_ended"]
    assert server.named("session_ended")[0]["reason"] == "deleted"


async def test_video_in_the_offer_is_answered_inactive(make_server: MakeServer) -> None:
    server = await make_server()
    status, answer, _ = await post(server.url(), await make_offer("audio", "video"))
    assert status == 201, answer
    video = answer[answer.index("m=video"):]
    assert "a=inactive" in video


async def test_bad_offers_get_a_reason(make_server: MakeServer) -> None:
    server = await make_server()
    good = await make_offer("audio")
    no_ice = "".join(line for line in good.splitlines(keepends=True)
                     if not line.startswith(("a=ice-ufrag", "a=ice-pwd")))
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"token": None}, 401, "missing bearer token", "unauthorized"),
        ({"token": "wrong"}, 401, "invalid bearer token", "unauthorized"),
        ({"content_type": "text/plain"}, 415, "content type must be application/sdp",
         "content_type"),
        ({"body": "hello, server"}, 400, "offer is not a valid SDP", "invalid_sdp"),
        ({"body": b"\xff\xfe\x00"}, 400, "offer is not a valid SDP", "invalid_sdp"),
        ({"body": no_ice}, 400, "offer is not a valid SDP", "invalid_sdp"),
        ({"body": await make_offer("data")}, 422, "offer has no audio m-line", "no_audio"),
        ({"body": await make_offer("video")}, 422, "offer has no audio m-line", "no_audio"),
        ({"body": await make_offer("audio", direction="recvonly")}, 422,
         "offer's audio is recvonly", "no_audio"),
        ({"body": only_codecs(good, {"0": "PCMU", "9": "G722"})}, 422,
         "unsupported codec: offer has", "unsupported_codec"),
        ({"room": "bad room"}, 400, "invalid room id", "bad_id"),
        ({"speaker": "x" * 129}, 400, "invalid speaker id", "bad_id"),
    ]
    for case, status, reason, kind in cases:
        url = server.url(case.get("room", "room-1"), case.get("speaker", "alice"))
        got, text, headers = await post(url, case.get("body", good),
                                        token=case.get("token", TOKEN),
                                        content_type=case.get("content_type", "application/sdp"))
        assert (got, reason) == (status, text[:len(reason)]), (case, text)
        assert headers["Content-Type"].startswith("text/plain")
        if status == 401:
            assert headers["WWW-Authenticate"].startswith("Bearer")
        assert server.named("offer_rejected")[-1]["kind"] == kind
    codec = only_codecs(good, {"0": "PCMU", "9": "G722"})
    _, text, _ = await post(server.url(), codec)
    assert set(re.findall(r"PCMU|G722|opus", text)) == {"PCMU", "G722", "opus"}
    assert server.endpoint.session_count == 0 and not server.named("session_started")


async def test_same_speaker_publishing_again_replaces_the_session(
        make_server: MakeServer) -> None:
    server = await make_server()
    first = await post(server.url(), await make_offer("audio"))
    second = await post(server.url(), await make_offer("audio"))
    assert first[0] == second[0] == 201
    ended = await server.wait_for("session_ended")
    assert [e["reason"] for e in ended] == ["replaced"]
    assert ended[0]["session_id"] == first[2]["Location"].rsplit("/", 1)[1]
    assert server.endpoint.session_count == 1


async def test_capacity_and_connect_timeout(make_server: MakeServer) -> None:
    server = await make_server(max_sessions=1, connect_timeout_s=0.3)
    assert (await post(server.url(speaker="a"), await make_offer("audio")))[0] == 201
    status, text, headers = await post(server.url(speaker="b"), await make_offer("audio"))
    assert (status, text, headers["Retry-After"]) == (503, "too many sessions", "5")
    # The offer's peer is gone, so the session never connects and is reaped.
    ended = await server.wait_for("session_ended", within_s=2.0)
    assert [e["reason"] for e in ended] == ["connect_timeout"]
    assert (await post(server.url(speaker="b"), await make_offer("audio")))[0] == 201


def speech_wav(path: Path) -> tuple[Path, list[tuple[float, float]]]:
    """Two cards clips with silence around them; returns the file and each clip's span (s)."""
    parts, spans, t = [], [], 0.0
    for name, before in (("001.wav", 0.6), ("003.wav", 1.2)):
        clip_path = CARDS / name
        if not clip_path.exists():
            pytest.skip(f"evaldata not found at {clip_path} (tests read ../shared/evaldata)")
        with wave.open(str(clip_path)) as w:
            clip = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        parts += [np.zeros(round(before * SAMPLE_RATE), dtype=np.int16), clip]
        spans.append((t + before, t + before + len(clip) / SAMPLE_RATE))
        t += before + len(clip) / SAMPLE_RATE
    parts.append(np.zeros(round(0.8 * SAMPLE_RATE), dtype=np.int16))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.concatenate(parts).tobytes())
    return path, spans


@pytest.mark.integration
async def test_publish_over_webrtc_survives_bad_offers_and_a_broken_track(
        make_server: MakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, spans = speech_wav(tmp_path / "speech.wav")
    server = await make_server()
    # Garbage first: the endpoint must keep serving afterwards.
    for body, token in (("not sdp", TOKEN), (await make_offer("audio"), None),
                        (only_codecs(await make_offer("audio"), {"0": "PCMU"}), TOKEN)):
        assert (await post(server.url(), body, token=token))[0] in (400, 401, 422)
    with pytest.raises(WhipError) as refused:
        await publish_file(server.url(), path, token="wrong")
    assert refused.value.status == 401 and "invalid bearer token" in refused.value.reason

    # bob's track breaks after 10 frames; alice, publishing at the same time, must not notice.
    real_read_pcm = ingest.stream_session.read_pcm

    async def broken_read_pcm(track: Any) -> AsyncIterator[Any]:
        n = 0
        async for frame in real_read_pcm(track):
            yield frame
            n += 1
            if n == 10:
                raise RuntimeError("decoder exploded")

    calls: list[Any] = []

    def pick_reader(track: Any) -> AsyncIterator[Any]:
        calls.append(track)
        return real_read_pcm(track) if len(calls) == 1 else broken_read_pcm(track)

    monkeypatch.setattr(ingest.stream_session, "read_pcm", pick_reader)
    t0 = time.monotonic()
    alice = asyncio.create_task(publish_file(server.url(), path, token=TOKEN))
    await server.wait_for("session_started")
    bob = asyncio.create_task(publish_file(server.url(speaker="bob"), path, token=TOKEN))
    await alice
    elapsed = time.monotonic() - t0
    with pytest.raises(WhipError, match="ended before the file did"):
        await bob  # the server dropped bob's session, and his publisher is told so

    segs = []
    while not server.queue.empty():
        segs.append(server.queue.get_nowait())
    ours = [s for s in segs if s.speaker_id == "alice"]
    started = {e["speaker_id"]: e["session_id"] for e in server.named("session_started")}
    assert len(ours) == len(spans), [(s.start_offset_s, s.end_offset_s) for s in ours]
    for seg, (start, end) in zip(ours, spans, strict=True):
        assert start - 0.3 - 0.1 <= seg.start_offset_s <= start + 0.3
        # end: last voiced frame (webrtcvad trails speech by ~0.1 s) + tail, + codec delay
        assert end - 0.3 <= seg.end_offset_s <= end + 0.15 + 0.2
        assert seg.room_id == "room-1" and seg.stream_id == started["alice"]
        assert seg.end_monotonic <= time.monotonic()
        assert abs(seg.start_time - (time.time() - elapsed + seg.start_offset_s)) < 2.0
    assert [s.seq for s in ours] == [0, 1]
    duration = spans[-1][1] + 0.8
    assert elapsed >= duration - 0.1  # real-time pacing
    ended = {e["speaker_id"]: e for e in server.named("session_ended")}
    assert ended["alice"]["reason"] == "deleted"
    assert ended["alice"]["audio_s"] == pytest.approx(duration, abs=0.15)
    assert ended["bob"]["reason"] == "track_error"
    assert server.endpoint.session_count == 0


async def test_publisher_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="nope.wav"):
        await publish_file("http://127.0.0.1:9/whip/r/s", tmp_path / "nope.wav")
    path = tmp_path / "silence.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(bytes(3200))
    with pytest.raises(NotImplementedError):
        await publish_file("http://127.0.0.1:9/whip/r/s", path, realtime=False)
    # Port 9 (discard) has no listener on loopback: the error says where it tried.
    with pytest.raises(WhipError, match="cannot reach http://127.0.0.1:9/whip/r/s"):
        await publish_file("http://127.0.0.1:9/whip/r/s", path)
