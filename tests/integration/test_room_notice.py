"""JanusRoomNotifier against a real Janus TextRoom: a host in the room receives the notice.

Janus, the host and the notifier run inside a network namespace of the test's own
(:mod:`tests.janus_harness`); skips where that cannot be set up. The host is a second TextRoom
participant written here from scratch (aiortc data channel), so the test does not grade the
notifier's TextRoom flow with itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from alerts.room_notice import TEXTROOM, JanusRoomNotifier, notice_text, textroom_id
from asr.frames import Transcript
from ingest.ice import restrict_host_addresses
from ingest.janus_api import JanusError, JanusSession
from policy.frames import Alert, MatchSpan
from tests.fakes_asr import make_segment
from tests.janus_harness import janus_in_netns

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ROOM = 4321


async def _host(janus: JanusSession, room: int, inbox: asyncio.Queue[dict[str, Any]]) -> Any:
    """Join ``room`` as ``host`` over a data channel; every message lands in ``inbox``."""
    handle = await janus.attach(TEXTROOM)
    offer = (await handle.send({"request": "setup"})).jsep
    assert offer is not None
    pc = RTCPeerConnection()
    await pc.setRemoteDescription(RTCSessionDescription(**offer))
    channel = pc.createDataChannel("JanusDataChannel")
    opened = asyncio.Event()
    channel.on("open", opened.set)
    channel.on("message", lambda m: inbox.put_nowait(json.loads(m)))
    await pc.setLocalDescription(await pc.createAnswer())
    await handle.send({"request": "ack"}, jsep={"type": "answer",
                                                 "sdp": pc.localDescription.sdp})
    await asyncio.wait_for(opened.wait(), 10)
    channel.send(json.dumps({"textroom": "join", "transaction": secrets.token_hex(4),
                             "room": room, "username": "host", "display": "The Host"}))
    await _next(inbox, "success")  # after Janus's "join" event about ourselves
    return pc


async def _next(inbox: asyncio.Queue[dict[str, Any]], kind: str) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(inbox.get(), 10)
        if msg.get("textroom") == kind:
            return msg


async def _scenario(base_url: str) -> dict[str, Any]:
    res: dict[str, Any] = {}
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with aiohttp.ClientSession() as http, \
            await JanusSession.create(http, base_url) as janus:
        admin = await janus.attach(TEXTROOM)
        await admin.send({"request": "create", "room": ROOM, "description": "stage"})
        pc = await _host(janus, ROOM, inbox)
        while not inbox.empty():  # the host's own join, before the notifier's
            inbox.get_nowait()
        try:
            async with JanusRoomNotifier(base_url, display="RoomWarden") as notifier:
                await notifier.notify(str(ROOM), "RoomWarden: Bob B. may have broken the rules")
                res["join"] = await _next(inbox, "join")
                res["first"] = await _next(inbox, "message")
                await notifier.notify(str(ROOM), "second notice")  # same connection, joined
                res["second"] = await _next(inbox, "message")
                # A room nobody created: made on the fly, so the notice is not lost.
                await notifier.notify("777", "into a new room")
                res["rooms"] = sorted(r["room"] for r in
                                      (await admin.send({"request": "list"})).data["list"])
            res["leave"] = await _next(inbox, "leave")
            strict = JanusRoomNotifier(base_url, create_missing=False)
            try:
                with pytest.raises(JanusError, match="no such TextRoom room 778"):
                    await strict.notify("778", "lost")
            finally:
                await strict.close()
        finally:
            await pc.close()
    dead = JanusRoomNotifier(base_url.replace(":8088", ":8099"), timeout_s=2)
    try:
        with pytest.raises(JanusError, match="cannot reach"):
            await dead.notify("1", "nobody home")
    finally:
        await dead.close()
    return res


async def test_notice_reaches_the_host() -> None:
    async with janus_in_netns("rwtxt") as jn:
        restrict_host_addresses([jn.client_addr])
        try:
            res = await asyncio.wait_for(jn.run_in_netns(_scenario, jn.base_url), 45)
        except BaseException:
            print(jn.log_tail())
            raise
        finally:
            restrict_host_addresses(None)

    notifier_user = res["join"]["username"]
    assert notifier_user.startswith("roomwarden-") and res["join"]["display"] == "RoomWarden"
    first = res["first"]
    assert (first["room"], first["from"]) == (ROOM, notifier_user)
    assert first["text"] == "RoomWarden: Bob B. may have broken the rules"
    assert res["second"]["text"] == "second notice"
    assert 777 in res["rooms"] and 778 not in res["rooms"]
    assert res["leave"]["username"] == notifier_user  # close() leaves the rooms


def test_notice_text_names_speaker_and_category_not_words() -> None:
    seg = make_segment(room_id="1234", speaker_id="998877")
    transcript = Transcript(segment=seg, transcript_id="t", text="you idiot", language="en",
                            words=(), confidence=0.9, confidence_class="confident",
                            model_id="m", asr_seconds=0.1)
    alert = Alert("a", transcript, "abuse", "high", "review", "idiot",
                  MatchSpan(4, 9, "idiot"), "h")
    assert notice_text(alert) == ("RoomWarden: 998877 may have broken the room rules (abuse, "
                                  "high); suggested action: review.")
    named = dataclasses.replace(alert, transcript=dataclasses.replace(
        transcript, segment=dataclasses.replace(seg, speaker_name="Bob B.")))
    assert notice_text(named).startswith("RoomWarden: Bob B. may have broken")
    assert (textroom_id("1234"), textroom_id("stage-a")) == (1234, "stage-a")
