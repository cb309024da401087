"""A simulated room speaker: publishes an audio file into a Janus VideoRoom with aiortc.

Used by tests, demos and benchmarks to stand in for a browser in a real room.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence

import aiohttp
import structlog
from aiortc import RTCIceServer, RTCSessionDescription

from ingest.file_publisher import open_file_playback
from ingest.janus_api import JanusError, JanusSession
from ingest.janus_videoroom import VIDEOROOM

log = structlog.get_logger(__name__)


async def publish_file_to_videoroom(
    janus_url: str,
    room: int,
    path: str | os.PathLike[str],
    display: str,
    *,
    on_joined: Callable[[int], None] | None = None,
    ice_servers: Sequence[RTCIceServer] = (),
    connect_timeout_s: float = 10.0,
    feed_id: int | None = None,
) -> int:
    """Join ``room`` as publisher ``display``, play ``path`` into it in real time, then leave.

    Steps: attach the VideoRoom plugin → ``join`` (``ptype: publisher``) → ``publish``
    (``audio: true, video: false``) with aiortc's complete offer → the answer → media until the
    file ends → ``leave`` → detach and destroy the Janus session.

    Args:
        janus_url: Janus HTTP API root, e.g. ``http://10.213.1.1:8088/janus``.
        room: VideoRoom id.
        path: an audio file FFmpeg can read.
        display: the display name other participants see.
        on_joined: called with the participant id Janus assigned, as soon as it is known.
        ice_servers: STUN/TURN servers; default none (host candidates only).
        connect_timeout_s: how long ICE + DTLS may take once the answer is in.
        feed_id: participant id to join with (e.g. to rejoin as the same participant); None
            lets Janus choose one.

    Returns:
        The participant (feed) id Janus assigned to the publisher.

    Raises:
        IngestError: the file cannot be read or has no audio.
        JanusError: Janus refused a request, or the connection did not come up in time or
            ended before the file did.
    """
    playback = open_file_playback(path, ice_servers)
    track, pc = playback.track, playback.pc
    ended, connected, failed = playback.ended, playback.connected, playback.failed

    try:
        async with aiohttp.ClientSession() as http, \
                await JanusSession.create(http, janus_url) as janus:
            handle = await janus.attach(VIDEOROOM)
            join = {"request": "join", "ptype": "publisher", "room": room, "display": display}
            if feed_id is not None:
                join["id"] = feed_id
            joined = await handle.send(join)
            feed = int(joined.data["id"])
            if on_joined is not None:
                on_joined(feed)
            pc.addTransceiver(track, direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            reply = await handle.send({"request": "publish", "audio": True, "video": False},
                                      jsep={"type": "offer", "sdp": pc.localDescription.sdp})
            if not reply.jsep or reply.jsep.get("type") != "answer":
                raise JanusError(0, f"publish: no JSEP answer in {reply.data}")
            await pc.setRemoteDescription(RTCSessionDescription(**reply.jsep))
            log.info("janus_publishing", room=room, feed=feed, display=display,
                     file=os.fspath(path))
            try:
                async with asyncio.timeout(connect_timeout_s):
                    up = await _first(connected, failed, janus.lost)
            except TimeoutError:
                up = False
            if not up:
                raise JanusError(0, f"WebRTC connection to Janus not established within "
                                    f"{connect_timeout_s:g} s ({pc.connectionState})")
            if not await _first(ended, failed, janus.lost):
                raise JanusError(0, f"publishing ended before the file did ({pc.connectionState}"
                                    f"{', ' + janus.lost_reason if janus.lost.is_set() else ''})")
            await handle.send({"request": "leave"})
            await handle.detach()
            return feed
    finally:
        await pc.close()


async def _first(wanted: asyncio.Event, *others: asyncio.Event) -> bool:
    """Wait for any of the events; True if ``wanted`` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in (wanted, *others)]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return wanted.is_set()
