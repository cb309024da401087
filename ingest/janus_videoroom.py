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

Publishers the tap cannot hear (no audio m-line, or audio in a codec other than Opus) are
refused with a logged reason and not retried while they stay published. A subscription whose
media dies while its publisher is still in the room (connection failed, track broken, Janus hung
it up) is re-made at the next poll and reported as a ``track_died`` :class:`StreamGap` covering
the silence; a normal unpublish or leave is not a gap. Losing the Janus session is the owner's
business (:class:`ingest.janus_rooms.JanusRoomTap` reports it for the whole room).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp

from ingest.frames import SpeechSegment, StreamGap, clean_display_name
from ingest.janus_api import JanusError, JanusHandle, JanusSession, JsonDict
from ingest.stream_session import EventHook, StreamSession, prepare_audio_transceivers
from ingest.vad import SpeechSegmenter, VadParams

log = structlog.get_logger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
_END_EVENTS = frozenset({"hangup", "detached", "session_lost"})
NO_SUCH_ROOM = 426
"""VideoRoom error code of a room that does not exist (any more)."""
GapHook = Callable[[StreamGap], None]
"""Where a live source reports the gaps in what it heard (the composition root's callback)."""
_DIED = frozenset({"connection_failed", "track_error", "error"})
"""Subscription ends that always mean the media died under a live publisher."""
_MAYBE_DIED = frozenset({"track_ended", "hangup", "detached"})
"""Ends that are a death only if the publisher is still published at the next poll (a normal
leave can also look like this, depending on which of Janus's messages arrives first)."""


class SubscriptionRefused(JanusError):
    """A publisher the tap cannot hear: no audio, or no codec RoomWarden decodes."""


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
        on_event: the composition root's ``(name, fields)`` hook, as for WHIP sessions, plus
            ``subscription_refused`` (``feed``, ``reason``).
        on_gap: called with each ``track_died`` gap once it is over.
        max_poll_failures: consecutive failed ``listparticipants`` polls (garbage, timeouts)
            tolerated before following the room fails; "no such room" and a lost session
            fail it at once.
    """

    def __init__(self, janus: JanusSession, room: int, out: asyncio.Queue[SpeechSegment], *,
                 vad: VadParams | None = None, poll_interval_s: float = 2.0,
                 ice_servers: Sequence[RTCIceServer] = (), connect_timeout_s: float = 10.0,
                 on_event: EventHook | None = None, on_gap: GapHook | None = None,
                 max_poll_failures: int = 3) -> None:
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
        self.refused: dict[int, str] = {}
        """feed → why it cannot be heard; forgotten when the feed stops publishing."""
        self.max_poll_failures = max_poll_failures
        self._emit: EventHook = on_event or (lambda name, fields: None)
        self._on_gap: GapHook = on_gap or (lambda gap: None)
        self._died: dict[int, tuple[float, str]] = {}  # feed → (media stopped at, end reason)
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

    @property
    def error(self) -> BaseException | None:
        """Why following the room stopped (e.g. JanusError 426: the room was destroyed), or
        None while it runs or after a normal :meth:`close`."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

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
        for feed, (since, why) in list(self._died.items()):
            if why in _DIED:  # still deaf to a live publisher when the tap stops
                self._gap(feed, since, "closed")
        self._died.clear()
        if self._control is not None:
            await self._control.detach()
            self._control = None

    async def _follow(self) -> None:
        assert self._control is not None
        failures = 0
        while True:
            try:
                participants = await list_participants(self._control, self.room)
                failures = 0
            except JanusError as exc:
                failures += 1
                if (exc.code == NO_SUCH_ROOM or self.janus.lost.is_set()
                        or failures >= self.max_poll_failures):
                    raise
                log.warning("janus_room_poll_failed", room_id=self.room, error=str(exc),
                            failures=failures)
                await asyncio.sleep(self.poll_interval_s)
                continue
            await self._reconcile(participants)
            await asyncio.sleep(self.poll_interval_s)

    async def _reconcile(self, participants: list[JsonDict]) -> None:
        """Subscribe to new publishers, end subscriptions of gone ones, settle dead tracks."""
        live: dict[int, JsonDict] = {}
        for p in participants:
            with contextlib.suppress(AttributeError, KeyError, TypeError, ValueError):
                if p.get("publisher"):  # entries of a garbage answer are skipped
                    live[int(p["id"])] = p
        for feed, p in live.items():
            name = self.displays[str(feed)] = clean_display_name(p.get("display"))
            if feed in self.subscriptions:  # a participant may rename themselves
                self.subscriptions[feed].session.segmenter.speaker_name = name
            elif feed not in self.refused:
                try:
                    await self._subscribe(feed)
                except SubscriptionRefused as exc:
                    self.refused[feed] = exc.reason
                    log.warning("janus_subscription_refused", room_id=self.room, feed=feed,
                                display=name, reason=exc.reason)
                    self._emit("subscription_refused", {"room_id": str(self.room),
                                                        "feed": feed, "reason": exc.reason})
                except (JanusError, ValueError, OSError) as exc:
                    log.warning("janus_subscribe_failed", room_id=self.room, feed=feed,
                                error=str(exc))
        for feed, sub in list(self.subscriptions.items()):
            if feed not in live:
                await self._end(sub, "unpublished")
        for feed in list(self.refused):
            if feed not in live:  # may come back publishing something else
                del self.refused[feed]
        for feed, (since, why) in list(self._died.items()):
            if feed in self.subscriptions:
                self._gap(feed, since, why)  # heard again
            elif feed not in live:
                del self._died[feed]
                if why in _DIED:  # it died, then its publisher left: deaf until then
                    self._gap(feed, since, why)

    def _gap(self, feed: int, since: float, why: str) -> None:
        self._died.pop(feed, None)
        gap = StreamGap(str(self.room), str(feed), since, max(since, time.time()),
                        "track_died", "janus")
        log.warning("janus_track_gap", room_id=self.room, speaker_id=str(feed), cause=why,
                    gap_id=gap.gap_id, seconds=round(gap.duration_s, 3))
        try:
            self._on_gap(gap)
        except Exception:  # a reporting bug must not stop the tap
            log.exception("janus_gap_hook_failed", room_id=self.room)

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
            audio = prepare_audio_transceivers(pc, _audible_offer(feed, reply.jsep["sdp"]))

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

        def forget() -> None:
            if self.subscriptions.get(sub.feed) is sub:
                del self.subscriptions[sub.feed]
            if sub.watcher is not None and sub.watcher is not asyncio.current_task():
                sub.watcher.cancel()

        fields = await sub.session.end(reason, forget=forget)
        if fields is None:
            return
        if reason in _DIED or reason in _MAYBE_DIED:
            self._died.setdefault(sub.feed, (sub.session.last_frame_wall or time.time(), reason))
        await sub.handle.detach()
        log.info("janus_subscription_ended", **fields)
        self._emit("session_ended", fields)


def _audible_offer(feed: int, sdp: str) -> aiortc_sdp.SessionDescription:
    """Janus's offer, parsed, if it carries audio RoomWarden can decode (Opus).

    Raises:
        SubscriptionRefused: no audio m-line, or its codecs do not include Opus.
    """
    offer = aiortc_sdp.SessionDescription.parse(sdp)
    audio = [m for m in offer.media if m.kind == "audio"]
    if not audio:
        kinds = ",".join(m.kind for m in offer.media) or "nothing"
        raise SubscriptionRefused(0, f"publisher {feed} sends no audio (only {kinds})")
    codecs = [c.mimeType.lower() for c in audio[0].rtp.codecs]
    if "audio/opus" not in codecs:
        raise SubscriptionRefused(0, f"publisher {feed} sends audio as {', '.join(codecs)}; "
                                     "only Opus is decoded")
    return offer
