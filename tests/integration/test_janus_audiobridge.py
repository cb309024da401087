"""A real Janus AudioBridge, tapped: two participants speak in turn, the tap credits each.

Janus, the participants and the tap run inside a network namespace of the test's own
(:mod:`tests.janus_harness`). The room is created with ``audio_level_event: true`` so Janus
announces who is talking; aiortc's sender fills in the RFC 6464 audio levels Janus reads.
"""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

from ingest.frames import SpeechSegment
from ingest.ice import restrict_host_addresses
from ingest.janus_api import JanusError, JanusSession
from ingest.janus_audiobridge import AUDIOBRIDGE, AudioBridgeTap
from tests.janus_harness import janus_in_netns

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SAMPLES = Path(__file__).resolve().parents[2] / "roomwarden" / "samples"
SR = 16_000
LEAD_S = 1.5  # silence before the first utterance: both participants are connected by then
GAP_S = 1.5  # between the two utterances: well above the VAD hangover
TAIL_S = 1.5
ROOM = 5678


def _utterance(speaker: str) -> np.ndarray:
    script = json.loads((SAMPLES / "room.json").read_text())
    utt = next(u for u in script["utterances"] if u["speaker"] == speaker)
    with wave.open(str(SAMPLES / script["speakers"][speaker]), "rb") as src:
        assert (src.getframerate(), src.getnchannels()) == (SR, 1)
        audio = np.frombuffer(src.readframes(src.getnframes()), np.int16)
    return audio[round(utt["start_s"] * SR): round(utt["end_s"] * SR)]


def _write(path: Path, audio: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(audio.tobytes())
    return path


def _clips(dest: Path) -> tuple[Path, Path, tuple[float, float, float, float]]:
    """Alice speaks, then Bob: two equally long clips, silent while the other one talks."""
    alice, bob = _utterance("alice"), _utterance("bob")
    a0 = LEAD_S
    b0 = a0 + len(alice) / SR + GAP_S
    total = round((b0 + len(bob) / SR + TAIL_S) * SR)

    def place(audio: np.ndarray, at_s: float) -> np.ndarray:
        out = np.zeros(total, np.int16)
        out[round(at_s * SR): round(at_s * SR) + len(audio)] = audio
        return out

    times = (a0, a0 + len(alice) / SR, b0, b0 + len(bob) / SR)
    return (_write(dest / "alice.wav", place(alice, a0)),
            _write(dest / "bob.wav", place(bob, b0)), times)


async def _participant(base_url: str, clip: Path, display: str, go: asyncio.Event) -> str:
    """Join the room with ``clip`` as microphone; wait for ``go`` to end; return the id."""
    player = MediaPlayer(str(clip))
    pc = RTCPeerConnection()
    async with aiohttp.ClientSession() as http, \
            await JanusSession.create(http, base_url) as janus:
        handle = await janus.attach(AUDIOBRIDGE)
        pc.addTransceiver(player.audio, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        reply = await handle.send({"request": "join", "room": ROOM, "display": display},
                                  jsep={"type": "offer", "sdp": pc.localDescription.sdp})
        assert reply.jsep is not None, reply.data
        await pc.setRemoteDescription(RTCSessionDescription(**reply.jsep))
        try:
            await go.wait()
        finally:
            await pc.close()
            await handle.detach()
    return str(reply.data["id"])


TUNED = {"audiolevel_event": True, "audio_active_packets": 25, "audio_level_average": 45}
"""``audiolevel_event`` (sic: Janus silently ignores ``audio_level_event``) with 0.5 s windows
(``audio_active_packets`` 25; default 100 = 2 s) and a talking threshold of -45 dBov
(``audio_level_average`` 45; default 25): the sample voices average about -30 dBov while
talking, pauses included."""


async def _scenario(base_url: str, alice: Path, bob: Path, clip_s: float,
                    room_opts: dict[str, Any]) -> dict[str, Any]:
    out: asyncio.Queue[SpeechSegment] = asyncio.Queue()
    events: list[tuple[str, str]] = []
    async with aiohttp.ClientSession() as http, \
            await JanusSession.create(http, base_url) as janus:
        admin = await janus.attach(AUDIOBRIDGE)
        with pytest.raises(JanusError) as missing:
            await AudioBridgeTap(janus, ROOM, out).start()
        assert missing.value.code == 485
        await admin.send({"request": "create", "room": ROOM, "sampling_rate": 16000,
                          **room_opts})

        def on_event(name: str, fields: dict[str, Any]) -> None:
            if name in ("talking", "stopped_talking"):
                events.append((name, fields["participant"]))

        async with AudioBridgeTap(janus, ROOM, out, on_event=on_event) as tap:
            go = asyncio.Event()
            tasks = [asyncio.create_task(_participant(base_url, alice, "Alice A.", go)),
                     asyncio.create_task(_participant(base_url, bob, "Bob B.", go))]
            await asyncio.sleep(clip_s + 1.0)  # both clips played (they start within ~1 s)
            go.set()
            ids = await asyncio.gather(*tasks)
            await asyncio.sleep(0.3)
            displays = dict(tap.displays)
        await admin.send({"request": "destroy", "room": ROOM})
        await admin.detach()
    return {"ids": ids, "events": events, "displays": displays,
            "segments": [out.get_nowait() for _ in range(out.qsize())]}


@pytest.mark.parametrize("room_opts", [TUNED, {}], ids=["talking_events", "no_events"])
async def test_audiobridge_tap_credits_each_speaker(tmp_path: Path,
                                                    room_opts: dict[str, Any]) -> None:
    """With talking events each utterance is credited to its speaker; without, to "room"."""
    alice, bob, times = _clips(tmp_path)
    clip_s = times[3] + TAIL_S
    async with janus_in_netns("rwab") as jn:
        restrict_host_addresses([jn.client_addr])
        try:
            res = await asyncio.wait_for(
                jn.run_in_netns(_scenario, jn.base_url, alice, bob, clip_s, room_opts), 45)
        except BaseException:
            print(jn.log_tail())
            raise
        finally:
            restrict_host_addresses(None)

    alice_id, bob_id = res["ids"]
    segments: list[SpeechSegment] = res["segments"]
    print("talking events:", res["events"])
    print("segments:", [(s.speaker_id, s.speaker_name, round(s.duration_s, 2)) for s in segments])
    assert res["displays"] == {alice_id: "Alice A.", bob_id: "Bob B."}
    if room_opts:
        assert ("talking", alice_id) in res["events"] and ("talking", bob_id) in res["events"]
        assert [(s.speaker_id, s.speaker_name) for s in segments] == [
            (alice_id, "Alice A."), (bob_id, "Bob B.")]
    else:
        assert res["events"] == []
        assert [(s.speaker_id, s.speaker_name) for s in segments] == [("room", "")] * 2
    for seg, (start, end) in zip(segments, (times[:2], times[2:]), strict=True):
        assert seg.room_id == str(ROOM)
        assert seg.segment_id == SpeechSegment.make_id(seg.room_id, seg.speaker_id,
                                                       seg.start_offset_s, seg.pcm)
        assert end - start <= seg.duration_s <= end - start + 1.0
