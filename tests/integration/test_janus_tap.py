"""A real Janus VideoRoom, tapped: a simulated speaker publishes a clip, the tap cuts segments.

Janus, the publisher and the tap all run inside a network namespace of the test's own
(:mod:`tests.janus_harness`): no WebRTC or HTTP packet can reach this machine's real addresses
or leave it. Skips where that cannot be set up (not root, no ``ip netns``, no ``janus``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
import wave
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ingest.frames import SpeechSegment
from ingest.ice import restrict_host_addresses
from ingest.janus_api import JanusSession
from ingest.janus_publisher import publish_file_to_videoroom
from ingest.janus_videoroom import VIDEOROOM, VideoRoomTap
from tests.janus_harness import janus_in_netns

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SAMPLES = Path(__file__).resolve().parents[2] / "roomwarden" / "samples"
LEAD_S = 3.0
"""Silence before the utterance in the clip: time for the tap to see the publisher and connect."""
TAIL_S = 2.0


def _cut_flagged_utterance(dest: Path) -> tuple[Path, float, float]:
    """Bob's first flagged utterance with LEAD_S before and TAIL_S after; (clip, start, end)."""
    script = json.loads((SAMPLES / "room.json").read_text())
    utt = next(u for u in script["utterances"] if u["speaker"] == "bob" and u["expect"])
    with wave.open(str(SAMPLES / script["speakers"]["bob"]), "rb") as src:
        rate = src.getframerate()
        begin = round((utt["start_s"] - LEAD_S) * rate)
        src.setpos(begin)
        frames = src.readframes(round((utt["end_s"] + TAIL_S) * rate) - begin)
        params = src.getparams()
    clip = dest / "bob_flagged.wav"
    with wave.open(str(clip), "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return clip, LEAD_S, LEAD_S + utt["end_s"] - utt["start_s"]


def _nominated_hosts(pc: Any) -> set[str]:
    """Addresses of the ICE pair(s) a connected aiortc peer connection uses (aioice internals)."""
    hosts: set[str] = set()
    for t in pc.getTransceivers():
        conn = t.receiver.transport.transport._connection
        for pair in conn._nominated.values():
            hosts |= {pair.local_candidate.host, pair.remote_candidate.host}
    return hosts


async def _scenario(base_url: str, room: int, clip: Path) -> dict[str, Any]:
    """Runs inside the namespace: create a room, tap it, publish the clip, collect segments."""
    out: asyncio.Queue[SpeechSegment] = asyncio.Queue()
    result: dict[str, Any] = {"hosts": set()}
    async with aiohttp.ClientSession() as http, \
            await JanusSession.create(http, base_url) as janus:
        admin = await janus.attach(VIDEOROOM)
        await admin.send({"request": "create", "room": room, "publishers": 4,
                          "audiocodec": "opus", "description": "roomwarden tap test"})
        ended = asyncio.Event()

        def on_event(name: str, fields: dict[str, Any]) -> None:
            if name == "session_ended":
                result["end_reason"] = fields["reason"]
                ended.set()

        async with VideoRoomTap(janus, room, out, poll_interval_s=0.3, on_event=on_event) as tap:

            async def record_ice() -> None:  # once the tap's subscription is up
                while True:
                    for sub in list(tap.subscriptions.values()):
                        if sub.session.connected:
                            result["hosts"] |= _nominated_hosts(sub.session.pc)
                            return
                    await asyncio.sleep(0.05)

            ice_task = asyncio.create_task(record_ice())
            result["joined_wall"] = None

            def joined(feed: int) -> None:
                result["joined_wall"] = time.time()

            feed = await publish_file_to_videoroom(base_url, room, clip, "Bob B.",
                                                   on_joined=joined)
            # The tap notices the publisher left and ends the subscription, flushing the VAD.
            await asyncio.wait_for(ended.wait(), 5)
            assert not tap.subscriptions
            ice_task.cancel()
            result["displays"] = dict(tap.displays)
        await admin.send({"request": "destroy", "room": room})
        await admin.detach()
    result["feed"] = feed
    result["segments"] = [out.get_nowait() for _ in range(out.qsize())]
    return result


async def test_videoroom_tap_segments_a_publisher(tmp_path: Path) -> None:
    clip, speech_start, speech_end = _cut_flagged_utterance(tmp_path)
    async with janus_in_netns("rwtap") as jn:
        # aioice is process-global: offer only the namespace's client address.
        restrict_host_addresses([jn.client_addr])
        try:
            res = await asyncio.wait_for(jn.run_in_netns(_scenario, jn.base_url, 4321, clip), 60)
        except BaseException:
            print(jn.log_tail())
            raise
        finally:
            restrict_host_addresses(None)

    subnet = ipaddress.ip_network(f"{jn.janus_addr}/24", strict=False)
    assert res["hosts"], "the tap never connected"
    assert all(ipaddress.ip_address(h) in subnet for h in res["hosts"]), res["hosts"]
    assert res["displays"] == {str(res["feed"]): "Bob B."}
    assert res["end_reason"] in ("unpublished", "hangup", "track_ended"), res["end_reason"]

    segments: list[SpeechSegment] = res["segments"]
    assert len(segments) == 1, segments
    seg = segments[0]
    assert seg.speaker_name == "Bob B."
    assert (seg.room_id, seg.speaker_id) == ("4321", str(res["feed"]))
    assert seg.seq == 0 and not seg.forced_split
    assert seg.stream_id.startswith("janus:")
    # The utterance lasts speech_end - speech_start s; the segment adds pre-roll and tail.
    assert speech_end - speech_start <= seg.duration_s <= speech_end - speech_start + 1.0
    assert seg.end_offset_s - seg.start_offset_s == pytest.approx(seg.duration_s, abs=0.001)
    # Offsets count from the subscription's first audio, which started after the publisher's.
    assert 0.0 <= seg.start_offset_s < speech_start
    # On the wall clock the segment starts where the utterance is in the clip (from the join:
    # + ICE/DTLS set-up of the publisher, - the VAD pre-roll).
    lag = seg.start_time - res["joined_wall"]
    assert speech_start - 0.5 <= lag <= speech_start + 1.5, lag
