"""A minimal WHIP publisher on aiortc: plays an audio file into a WHIP endpoint in real time.

Used by the demo, the tests and the benchmarks to act like a browser or OBS would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence

import aiohttp
import structlog
from aiortc import RTCIceServer, RTCSessionDescription
from yarl import URL

from ingest.errors import WhipError
from ingest.file_publisher import open_file_playback

log = structlog.get_logger(__name__)

SDP = "application/sdp"


async def publish_file(
    url: str,
    path: str | os.PathLike[str],
    *,
    token: str | None = None,
    realtime: bool = True,
    ice_servers: Sequence[RTCIceServer] = (),
    connect_timeout_s: float = 10.0,
) -> None:
    """Publish the audio of ``path`` to the WHIP endpoint ``url`` and return when it has played.

    Steps: offer (audio only, send-only, complete with candidates: aiortc does not trickle) →
    ``POST`` → ``201`` answer and ``Location`` → media until the file ends → ``DELETE`` the
    session, which makes the server flush the speaker's open segment → close.

    The last ~80 ms of the file may not be heard: aiortc's receiver keeps a few packets in its
    jitter buffer, and they are dropped when the session closes. End files with a little silence.

    Args:
        url: the WHIP endpoint, e.g. ``http://127.0.0.1:8080/whip/room1/alice``.
        path: an audio file FFmpeg can read.
        token: bearer token, if the endpoint needs one.
        realtime: must be True. aiortc's ``MediaPlayer`` paces file playback at real time, and
            faster-than-real-time media would overflow the receiver's jitter buffer anyway; use
            :func:`ingest.files.file_segments` to process a file as fast as possible.
        ice_servers: STUN/TURN servers; default none (host candidates only, see
            :mod:`ingest.ice`), so nothing is sent to a public STUN server.
        connect_timeout_s: how long ICE + DTLS may take once the answer is in.

    Raises:
        IngestError: the file cannot be opened or has no audio.
        WhipError: the server is unreachable or refused the offer (``status`` and its reason),
            sent no ``Location``, or the WebRTC connection did not come up in time or ended
            before the file did (e.g. the server ended the session).
        NotImplementedError: ``realtime=False``.
    """
    if not realtime:
        raise NotImplementedError("publish_file plays in real time only (aiortc MediaPlayer "
                                  "pacing); use ingest.files.file_segments for fast processing")
    playback = open_file_playback(path, ice_servers)
    track, pc = playback.track, playback.pc
    ended, connected, failed = playback.ended, playback.connected, playback.failed
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}

    try:
        pc.addTransceiver(track, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http:
            try:
                async with http.post(url, data=pc.localDescription.sdp.encode(),
                                     headers={**headers, "Content-Type": SDP}) as resp:
                    body = await resp.text()
                    location = resp.headers.get("Location")
            except aiohttp.ClientError as exc:
                raise WhipError(0, f"cannot reach {url}: {exc}") from exc
            if resp.status != 201:
                raise WhipError(resp.status, body.strip() or str(resp.reason))
            if not location:
                raise WhipError(resp.status, "the 201 answer has no Location header")
            resource = URL(url).join(URL(location))
            log.info("whip_publishing", url=url, file=os.fspath(path), resource=str(resource))
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
                try:
                    async with asyncio.timeout(connect_timeout_s):
                        up = await _first(connected, failed)
                except TimeoutError:
                    up = False
                if not up:
                    raise WhipError(0, f"WebRTC connection to {url} not established within "
                                       f"{connect_timeout_s:g} s ({pc.connectionState})")
                if not await _first(ended, failed):
                    raise WhipError(0, f"WebRTC connection to {url} ended before the file did "
                                       f"({pc.connectionState})")
            finally:
                # DELETE even on failure, so the server frees the session at once.
                await _delete(http, resource, headers)
    finally:
        await pc.close()


async def _first(wanted: asyncio.Event, other: asyncio.Event) -> bool:
    """Wait for ``wanted`` or ``other``; True if ``wanted`` was set."""
    waits = [asyncio.ensure_future(wanted.wait()), asyncio.ensure_future(other.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return wanted.is_set()


async def _delete(http: aiohttp.ClientSession, resource: URL, headers: dict[str, str]) -> None:
    """End the WHIP session; a session the server already ended (404) is fine."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with http.delete(resource, headers=headers,
                               timeout=aiohttp.ClientTimeout(total=10)) as resp:
            if resp.status not in (200, 202, 204, 404):
                log.warning("whip_delete_failed", resource=str(resource), status=resp.status,
                            reason=(await resp.text()).strip())
