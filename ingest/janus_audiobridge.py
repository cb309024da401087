"""Tap a Janus AudioBridge room: receive its mixed audio as a muted listener, credit speakers.

An AudioBridge mixes every participant into one stream per listener, so the tap joins the room
itself (``join`` with ``muted: true`` and display ``RoomWarden``: it is visible in the room's
participant list, unlike the VideoRoom tap) and answers nothing back: its offer has one
``recvonly`` Opus m-line. The mix is read exactly as any other stream, by
:class:`ingest.stream_session.StreamSession` (``read_pcm`` → one ``SpeechSegmenter`` → a queue),
with the placeholder speaker :data:`ingest.speaker_timeline.MIX_SPEAKER`.

Who spoke comes from Janus's ``talking`` / ``stopped-talking`` events (rooms created with
``audio_level_event: true``; Janus derives them from the RFC 6464 audio levels senders put in
their RTP headers). The tap records them in a :class:`~ingest.speaker_timeline.TalkingTimeline`
and a relay between the session's queue and ``out`` rewrites each finished segment with
:func:`~ingest.speaker_timeline.attribute`: participant id as ``speaker_id``, display name as
``speaker_name``, or ``"room"`` when nobody (or nobody in particular) was announced talking.
Overlapping speech stays one segment, credited to whoever talked during most of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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

from ingest.frames import SpeechSegment, clean_display_name
from ingest.janus_api import JanusError, JanusHandle, JanusSession, JsonDict
from ingest.speaker_timeline import MIX_SPEAKER, TalkingTimeline, attribute
from ingest.stream_session import EventHook, StreamSession
from ingest.vad import SpeechSegmenter, VadParams

log = structlog.get_logger(__name__)

AUDIOBRIDGE = "janus.plugin.audiobridge"
TAP_DISPLAY = "RoomWarden"
_END_EVENTS = frozenset({"hangup", "detached", "session_lost"})


class AudioBridgeTap:
    """Listens to one AudioBridge room and emits attributed segments (see the module doc).

    Use as ``async with AudioBridgeTap(...) as tap:``, or :meth:`start` / :meth:`close`.

    Args:
        janus: an open Janus session (not destroyed by the tap).
        room: the AudioBridge room id.
        out: queue the attributed segments are put on (``await out.put``).
        vad: segmentation parameters.
        on_event: the composition root's ``(name, fields)`` hook: ``session_started``,
            ``frames``, ``session_ended`` as for other streams, plus ``talking`` /
            ``stopped_talking`` (``participant``).
        timeline: the talking timeline to fill (its ``lag_s`` tunes attribution).
        ice_servers: STUN/TURN servers; default none (host candidates only).
        connect_timeout_s: how long joining and ICE + DTLS may take in :meth:`start`.
    """

    def __init__(self, janus: JanusSession, room: int, out: asyncio.Queue[SpeechSegment], *,
                 vad: VadParams | None = None, on_event: EventHook | None = None,
                 timeline: TalkingTimeline | None = None,
                 ice_servers: Sequence[RTCIceServer] = (),
                 connect_timeout_s: float = 10.0) -> None:
        self.janus = janus
        self.room = room
        self.out = out
        self.vad = vad or VadParams()
        self.timeline = timeline or TalkingTimeline()
        self.ice_servers = list(ice_servers)
        self.connect_timeout_s = connect_timeout_s
        self.displays: dict[str, str] = {}
        """participant id (as a string) → display name; kept after they leave."""
        self.participant_id: int | None = None
        """The tap's own id in the room."""
        self.session: StreamSession | None = None
        self.ended = asyncio.Event()
        """Set when the stream ended (room destroyed, hangup, connection failed, track over) or
        the tap closed; the owner should then :meth:`close` it (which flushes)."""
        self._emit: EventHook = on_event or (lambda name, fields: None)
        self._handle: JanusHandle | None = None
        # Between the session's pump and ``out``: small, so a full ``out`` still slows the pump.
        self._raw: asyncio.Queue[SpeechSegment] = asyncio.Queue(maxsize=4)
        self._tasks: list[asyncio.Task[Any]] = []
        self._closing = False
        self._announced = False  # session_started emitted: session_ended must follow
        self._end_reason = "closed"

    async def __aenter__(self) -> AudioBridgeTap:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Join the room as a muted listener and wait until its audio flows.

        Raises:
            JanusError: no such plugin or room, Janus refused the join, or the connection did
                not come up within ``connect_timeout_s``.
        """
        self._handle = handle = await self.janus.attach(AUDIOBRIDGE)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self.ice_servers))
        stream_id = f"janus:{self.janus.session_id}:{handle.handle_id}"
        segmenter = SpeechSegmenter(str(self.room), MIX_SPEAKER, stream_id, self.vad)
        self.session = session = StreamSession(stream_id, str(self.room), MIX_SPEAKER, pc,
                                               segmenter)
        connected = asyncio.Event()

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio" and session.task is None:
                session.task = asyncio.create_task(self._pump(track))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                session.connected = True
                connected.set()
            elif pc.connectionState == "failed":
                self._stop("connection_failed")

        try:
            exists = await handle.send({"request": "exists", "room": self.room})
            if not exists.data.get("exists"):
                raise JanusError(485, f"no such AudioBridge room {self.room}")
            audio = pc.addTransceiver("audio", direction="recvonly")
            caps = RTCRtpReceiver.getCapabilities("audio")
            audio.setCodecPreferences([c for c in (caps.codecs if caps else [])
                                       if c.mimeType.lower() == "audio/opus"])
            await pc.setLocalDescription(await pc.createOffer())
            reply = await handle.send(
                {"request": "join", "room": self.room, "display": TAP_DISPLAY, "muted": True},
                jsep={"type": "offer", "sdp": pc.localDescription.sdp})
            if not reply.jsep or reply.jsep.get("type") != "answer":
                raise JanusError(0, f"join {self.room}: no JSEP answer in {reply.data}")
            self.participant_id = int(reply.data["id"])
            self._participants(reply.data.get("participants"))
            await pc.setRemoteDescription(RTCSessionDescription(**reply.jsep))
            self._tasks = [asyncio.create_task(self._watch(handle)),
                           asyncio.create_task(self._relay())]
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    await connected.wait()
            except TimeoutError:
                raise JanusError(0, f"AudioBridge {self.room}: WebRTC not connected within "
                                    f"{self.connect_timeout_s:g} s ({pc.connectionState})") \
                    from None
        except BaseException:
            await self.close()
            raise
        log.info("janus_audiobridge_joined", **session.fields(), participant=self.participant_id)
        self._announced = True
        self._emit("session_started", session.fields())

    async def close(self) -> None:
        """Leave the room, flush the open segment through attribution onto ``out``, detach."""
        session, handle = self.session, self._handle
        if session is None or self._closing:
            return
        self._closing = True
        self._stop("closed")  # unless it had ended already: then that reason stands
        reason = self._end_reason
        if handle is not None and not self.janus.lost.is_set():
            with contextlib.suppress(JanusError):
                await handle.send({"request": "leave"})
        fields = await session.end(reason)
        # The pump has flushed into the relay's queue: let it all out, attributed, first.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._raw.join(), 5.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if handle is not None:
            await handle.detach()
        if fields is not None:
            log.info("janus_audiobridge_left", **fields)
            if self._announced:
                self._emit("session_ended", fields)

    @property
    def end_reason(self) -> str:
        """Why the stream ended (``closed`` until it did, or when the owner closed it)."""
        return self._end_reason

    async def wait(self) -> None:
        """Wait until the stream ends (see :attr:`ended`)."""
        await self.ended.wait()

    async def _pump(self, track: Any) -> None:
        assert self.session is not None
        reason = await self.session.pump(track, self._raw, self._emit)
        self._stop(reason)

    def _stop(self, reason: str) -> None:
        """The stream is over (the owner still calls :meth:`close`); keep the first reason."""
        if not self.ended.is_set():
            self._end_reason = reason
            self.ended.set()

    async def _relay(self) -> None:
        """Attribute each segment when it is finished: the timeline covers it by then."""
        while True:
            seg = await self._raw.get()
            try:
                await self.out.put(attribute(seg, self.timeline, self.displays))
            finally:
                self._raw.task_done()

    async def _watch(self, handle: JanusHandle) -> None:
        """Follow the room's events: talking, joins/leaves and the end of the tap's own leg."""
        while True:
            msg = await handle.events.get()
            if msg.get("janus") in _END_EVENTS:
                log.info("janus_audiobridge_ended", room_id=self.room, janus=msg.get("janus"))
                self._stop(str(msg.get("janus")))
                return
            data = (msg.get("plugindata") or {}).get("data") or {}
            self._on_plugin_event(data, time.time())

    def _on_plugin_event(self, data: JsonDict, now: float) -> None:
        kind = data.get("audiobridge")
        pid = str(data.get("id", ""))
        if kind in ("talking", "stopped-talking") and pid and pid != str(self.participant_id):
            if "display" in data:
                self.displays[pid] = clean_display_name(data.get("display"))
            if kind == "talking":
                self.timeline.started(pid, now)
                self._emit("talking", {"room_id": str(self.room), "participant": pid})
            else:
                self.timeline.stopped(pid, now)
                self._emit("stopped_talking", {"room_id": str(self.room), "participant": pid})
        elif kind in ("event", "joined"):  # "joined" announces others arriving, too
            self._participants(data.get("participants"), now)
            for key in ("leaving", "kicked"):
                if key in data:
                    self.timeline.stopped(str(data[key]), now)
        elif kind == "destroyed":
            log.info("janus_audiobridge_destroyed", room_id=self.room)
            self._stop("room_destroyed")

    def _participants(self, participants: Any, now: float | None = None) -> None:
        """Record display names (and who is already talking) from a participant list."""
        now = time.time() if now is None else now
        for p in participants if isinstance(participants, list) else []:
            if not isinstance(p, dict) or "id" not in p or p["id"] == self.participant_id:
                continue
            pid = str(p["id"])
            self.displays[pid] = clean_display_name(p.get("display"))
            if p.get("talking"):
                self.timeline.started(pid, now)
