"""Tap a Janus VideoRoom: subscribe to every publisher's audio and cut it into speech segments.

:class:`VideoRoomTap` polls ``listparticipants`` every ``poll_interval_s`` (a few seconds; events
would need the tap to join the room as a participant, visible to others). For each participant
that publishes it attaches a subscriber handle, ``join``\\ s with ``ptype: subscriber`` and
``streams: [{feed: ID}]``, answers Janus's JSEP offer with aiortc (audio received as Opus, any
other m-line answered inactive so video is never decoded) and sends ``start`` with the answer.
The audio is read exactly as a WHIP publisher's is: :class:`ingest.stream_session.StreamSession`
(``read_pcm`` → ``SpeechSegmenter`` → the output queue), with ``room_id = str(room)`` and
``speaker_id = str(participant id)``. A subscription ends, its open segment flushed, when the
participant stops publishing or leaves, Janus hangs it up, or the connection fails.

Offsets in the segments count from the moment the tap's subscription started receiving, not
from the start of the publisher's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import structlog
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp

from ingest.frames import SpeechSegment, clean_display_name
from ingest.janus_api import JanusError, JanusHandle, JanusSession, JsonDict
from ingest.stream_session import EventHook, StreamSession
from ingest.vad import SpeechSegmenter, VadParams

log = structlog.get_logger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
_END_EVENTS = frozenset({"hangup", "detached", "session_lost"})


async def list_rooms(handle: JanusHandle) -> list[JsonDict]:
    """The rooms of the VideoRoom plugin (``list``; private rooms are not listed)."""
    return list((await handle.send({"request": "list"})).data.get("list") or [])


async def list_participants(handle: JanusHandle, room: int) -> list[JsonDict]:
    """The participants of ``room``: ``id``, ``display``, ``publisher`` (bool), ``talking``."""
    reply = await handle.send({"request": "listparticipants", "room": room})
    return list(reply.data.get("participants") or [])


class _Subscription:
    """One publisher's audio: a subscriber handle, its peer connection and its reader."""

    def __init__(self, feed: int, handle: JanusHandle, session: StreamSession) -> None:
        self.feed = feed
        self.handle = handle
        self.session = session
        self.watcher: asyncio.Task[None] | None = None


class VideoRoomTap:
    """Subscribes to the audio of every publisher in one VideoRoom (see the module doc).

    Use as ``async with VideoRoomTap(...) as tap:``, or :meth:`start` / :meth:`close`.

    Args:
        janus: an open Janus session (not destroyed by the tap).
        room: the VideoRoom id.
        out: queue the segments are put on (``await out.put``: a full queue slows the reader).
        vad: segmentation parameters.
        poll_interval_s: period of the ``listparticipants`` poll.
        ice_servers: STUN/TURN servers; default none (host candidates only).
        connect_timeout_s: a subscription not connected by then is dropped (and retried).
        on_event: the composition root's ``(name, fields)`` hook, as for WHIP sessions.
    """

    def __init__(self, janus: JanusSession, room: int, out: asyncio.Queue[SpeechSegment], *,
                 vad: VadParams | None = None, poll_interval_s: float = 2.0,
                 ice_servers: Sequence[RTCIceServer] = (), connect_timeout_s: float = 10.0,
                 on_event: EventHook | None = None) -> None:
        self.janus = janus
        self.room = room
        self.out = out
        self.vad = vad or VadParams()
        self.poll_interval_s = poll_interval_s
        self.ice_servers = list(ice_servers)
        self.connect_timeout_s = connect_timeout_s
        self.displays: dict[str, str] = {}
        """speaker_id (participant id as a string) → display name; kept after they leave."""
        self.subscriptions: dict[int, _Subscription] = {}
        self._emit: EventHook = on_event or (lambda name, fields: None)
        self._control: JanusHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._ending: set[asyncio.Future[None]] = set()

    async def __aenter__(self) -> VideoRoomTap:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Attach the control handle, check the room exists and start following it.

        Raises:
            JanusError: the plugin or the room is not there.
        """
        self._control = await self.janus.attach(VIDEOROOM)
        await list_participants(self._control, self.room)
        self._task = asyncio.create_task(self._follow())

    async def wait(self) -> None:
        """Wait until following the room fails (raises its error) or the tap is closed."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def close(self) -> None:
        """Stop following, end every subscription (flushing segments) and detach."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*(self._end(s, "shutdown") for s in list(self.subscriptions.values())))
        await asyncio.gather(*self._ending, return_exceptions=True)
        if self._control is not None:
            await self._control.detach()
            self._control = None

    async def _follow(self) -> None:
        assert self._control is not None
        while True:
            participants = await list_participants(self._control, self.room)
            live = {int(p["id"]): p for p in participants if p.get("publisher")}
            for feed, p in live.items():
                name = self.displays[str(feed)] = clean_display_name(p.get("display"))
                if feed in self.subscriptions:  # a participant may rename themselves
                    self.subscriptions[feed].session.segmenter.speaker_name = name
                else:
                    try:
                        await self._subscribe(feed)
                    except (JanusError, ValueError, OSError) as exc:
                        log.warning("janus_subscribe_failed", room_id=self.room, feed=feed,
                                    error=str(exc))
            for feed, sub in list(self.subscriptions.items()):
                if feed not in live:
                    await self._end(sub, "unpublished")
            await asyncio.sleep(self.poll_interval_s)

    async def _subscribe(self, feed: int) -> None:
        handle = await self.janus.attach(VIDEOROOM)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers))
        speaker = str(feed)
        stream_id = f"janus:{self.janus.session_id}:{handle.handle_id}"
        segmenter = SpeechSegmenter(str(self.room), speaker, stream_id, self.vad,
                                    speaker_name=self.displays.get(speaker, ""))
        session = StreamSession(stream_id, str(self.room), speaker, pc, segmenter)
        sub = _Subscription(feed, handle, session)
        try:
            reply = await handle.send({"request": "join", "ptype": "subscriber",
                                       "room": self.room, "streams": [{"feed": feed}]})
            if not reply.jsep or reply.jsep.get("type") != "offer":
                raise JanusError(0, f"subscribe to {feed}: no JSEP offer in {reply.data}")
            audio = _prepare_transceivers(pc, reply.jsep["sdp"])

            @pc.on("track")
            def on_track(track: Any) -> None:
                if audio is not None and track is audio.receiver.track and session.task is None:
                    session.task = asyncio.create_task(self._run(sub, track))

            @pc.on("connectionstatechange")
            def on_state() -> None:
                if pc.connectionState == "connected":
                    session.connected = True
                elif pc.connectionState == "failed":
                    self._spawn_end(sub, "connection_failed")

            await pc.setRemoteDescription(RTCSessionDescription(**reply.jsep))
            await pc.setLocalDescription(await pc.createAnswer())
            answer = {"type": "answer", "sdp": pc.localDescription.sdp}
            await handle.send({"request": "start", "room": self.room}, jsep=answer)
        except BaseException:
            session.ending = True
            await pc.close()
            await handle.detach()
            raise
        self.subscriptions[feed] = sub
        sub.watcher = asyncio.create_task(self._watch(sub))
        log.info("janus_subscribed", **session.fields(), display=self.displays.get(speaker))
        self._emit("session_started", session.fields())

    async def _run(self, sub: _Subscription, track: Any) -> None:
        reason = await sub.session.pump(track, self.out, self._emit)
        if not sub.session.ending:
            self._spawn_end(sub, reason)

    async def _watch(self, sub: _Subscription) -> None:
        """End the subscription on Janus's say-so, or when it does not connect in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout_s
        while True:
            timeout = None if sub.session.connected else max(0.0, deadline - loop.time())
            try:
                msg = await asyncio.wait_for(sub.handle.events.get(), timeout)
            except TimeoutError:
                if not sub.session.connected:
                    self._spawn_end(sub, "connect_timeout")
                    return
                continue
            data = (msg.get("plugindata") or {}).get("data") or {}
            if msg.get("janus") in _END_EVENTS or "left" in data or "unpublished" in data:
                self._spawn_end(sub, str(msg.get("janus")))
                return

    def _spawn_end(self, sub: _Subscription, reason: str) -> None:
        task = asyncio.ensure_future(self._end(sub, reason))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def _end(self, sub: _Subscription, reason: str) -> None:
        """Close the connection, let the reader flush, detach. Idempotent."""
        session = sub.session
        if session.ending:
            return
        session.ending = True
        if self.subscriptions.get(sub.feed) is sub:
            del self.subscriptions[sub.feed]
        if sub.watcher is not None and sub.watcher is not asyncio.current_task():
            sub.watcher.cancel()
        await session.pc.close()  # ends the track after the decoded frames: the reader drains
        task = session.task
        if task is not None and task is not asyncio.current_task():
            done, _ = await asyncio.wait({task}, timeout=5.0 if session.connected else 0)
            if not done:
                task.cancel()
                await asyncio.wait({task})
        await sub.handle.detach()
        fields = {**session.fields(), "reason": reason, "audio_s": round(session.audio_s, 3),
                  "segments": session.segments}
        log.info("janus_subscription_ended", **fields)
        self._emit("session_ended", fields)


def _prepare_transceivers(pc: RTCPeerConnection, sdp: str) -> Any:
    """One transceiver per m-line of Janus's offer: the first audio receives Opus, the rest are
    inactive. Returns the audio transceiver (None if the offer has no audio)."""
    audio = None
    for media in aiortc_sdp.SessionDescription.parse(sdp).media:
        if media.kind == "audio" and audio is None:
            audio = pc.addTransceiver("audio", direction="recvonly")
            caps = RTCRtpReceiver.getCapabilities("audio")
            audio.setCodecPreferences([c for c in (caps.codecs if caps else [])
                                       if c.mimeType.lower() == "audio/opus"])
        elif media.kind in ("audio", "video"):
            pc.addTransceiver(media.kind, direction="inactive")
    return audio
