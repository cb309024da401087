"""Tap every VideoRoom of a Janus server, and survive Janus going away.

:class:`JanusRoomTap` owns one Janus session. Every ``poll_interval_s`` it lists the VideoRoom
rooms (or checks the configured ones) and keeps one :class:`ingest.janus_videoroom.VideoRoomTap`
per room: started when the room appears, stopped (its subscriptions ended, open segments
flushed) when the room is destroyed or stops being listed -- logged as ``janus_room_vanished``
with the reason. One room failing (an error or garbage answer to its ``listparticipants``)
stops that room's tap only; it is started again at the next poll if the room still exists.

When the session is lost (Janus restarted, crashed, timed the session out, or answers
garbage), every room tap is closed -- which flushes every open segment -- and the supervisor
reconnects with exponential backoff and jitter (capped at ``backoff_max_s``), re-discovers the
rooms and re-subscribes. Once it hears the rooms again it reports one :class:`StreamGap` per
room it was tapping, from the first sign of the loss to that moment: ``janus_unreachable`` if
the server could not be reached at some point, else ``session_lost``.

AudioBridge rooms named in ``audiobridge_rooms`` are tapped on the same session, each by an
:class:`ingest.janus_audiobridge.AudioBridgeTap` (a muted listener): they share the reconnects
and the outage gaps above. A bridge tap whose stream ends while the session lives (room
destroyed, connection failed) is re-joined at the next poll, and the silence in between is
reported as a ``track_died`` gap for the room (speaker ``""``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
import structlog
from aiortc import RTCIceServer

from ingest.frames import SpeechSegment, StreamGap
from ingest.janus_api import JanusError, JanusHandle, JanusSession
from ingest.janus_audiobridge import AudioBridgeTap
from ingest.janus_videoroom import (
    NO_SUCH_ROOM,
    VIDEOROOM,
    GapHook,
    VideoRoomTap,
    list_rooms,
)
from ingest.stream_session import EventHook
from ingest.vad import VadParams

log = structlog.get_logger(__name__)


@dataclass
class _Outage:
    """A loss of the Janus session, until the rooms are heard again."""

    since: float
    reason: str
    rooms: set[int] = field(default_factory=set)


class JanusRoomTap:
    """Keeps a tap on every (or every configured) VideoRoom of one Janus server.

    Use as ``async with JanusRoomTap(...) as tap:``, or :meth:`start` / :meth:`close`.

    Args:
        base_url: Janus HTTP API root, e.g. ``http://janus:8088/janus``.
        out: queue the segments of every room are put on.
        rooms: VideoRoom ids to tap; None: every room ``list`` shows (private rooms are not
            listed, so name those here).
        audiobridge_rooms: AudioBridge room ids to tap as a muted listener (never discovered:
            joining is visible to the room, so only the rooms named here).
        vad: segmentation parameters.
        poll_interval_s: period of room discovery and of each room's participant poll.
        on_gap: called with every gap (room outages and per-speaker ``track_died``).
        on_event: ``(name, fields)`` hook of the composition root, passed to the room taps.
        ice_servers: STUN/TURN servers; default none (host candidates only).
        backoff_initial_s / backoff_max_s: first and longest wait between reconnection
            attempts; doubled after each failure, each wait drawn in [half, full] (jitter, so
            many instances do not hammer a recovering Janus in step).
        request_timeout_s: how long one Janus request may take.
        max_list_failures: consecutive failed ``list`` polls on a session that still looks
            alive before it is dropped and made again.
        rng: randomness for the jitter (tests pass a seeded one).
    """

    def __init__(self, base_url: str, out: asyncio.Queue[SpeechSegment], *,
                 rooms: Sequence[int] | None = None, audiobridge_rooms: Sequence[int] = (),
                 vad: VadParams | None = None,
                 poll_interval_s: float = 2.0, on_gap: GapHook | None = None,
                 on_event: EventHook | None = None, ice_servers: Sequence[RTCIceServer] = (),
                 backoff_initial_s: float = 0.25, backoff_max_s: float = 5.0,
                 request_timeout_s: float = 10.0, max_list_failures: int = 3,
                 rng: random.Random | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.out = out
        self.rooms = None if rooms is None else sorted(set(rooms))
        self.vad = vad or VadParams()
        self.poll_interval_s = poll_interval_s
        self.ice_servers = list(ice_servers)
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.request_timeout_s = request_timeout_s
        self.max_list_failures = max_list_failures
        self.taps: dict[int, VideoRoomTap] = {}
        """room id → its tap, while it runs."""
        self.audiobridge_rooms = sorted(set(audiobridge_rooms))
        self.bridges: dict[int, AudioBridgeTap] = {}
        """AudioBridge room id → its listener tap, while it runs."""
        self._bridge_down: dict[int, tuple[float, str]] = {}  # room → (since, why) until re-joined
        self._bridge_missing: set[int] = set()  # bridge rooms that failed to join (logged once)
        self.janus: JanusSession | None = None
        """The current Janus session (None while disconnected)."""
        self.reconnects = 0
        """Sessions made after the first (each one followed a loss)."""
        self._on_gap: GapHook = on_gap or (lambda gap: None)
        self._on_event = on_event
        self._rng = rng or random.Random()
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._outage: _Outage | None = None
        self._missing: set[int] = set()  # configured rooms found absent (logged once)

    @property
    def connected(self) -> bool:
        """True while a Janus session is up (for ``/healthz`` and a gauge)."""
        return self.janus is not None and not self.janus.lost.is_set()

    async def __aenter__(self) -> JanusRoomTap:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start connecting and following rooms in the background (never raises for Janus
        being unreachable: that is retried and logged)."""
        self._http = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="janus-room-tap")

    async def close(self) -> None:
        """Stop: end every subscription (flushing segments), destroy the session, and report
        an outage still in progress as a gap ending now."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._close_taps("shutdown")
        if self.janus is not None:
            await self.janus.destroy()
            self.janus = None
        self._report_outage()
        if self._http is not None:
            await self._http.close()

    # -- the session loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.backoff_initial_s
        while True:
            try:
                janus = await JanusSession.create(self._http_session(), self.base_url,
                                                  request_timeout_s=self.request_timeout_s)
            except JanusError as exc:
                wait = delay * self._rng.uniform(0.5, 1.0)
                log.warning("janus_unreachable", url=self.base_url, error=exc.reason,
                            retry_in_s=round(wait, 3))
                if self._outage is not None:
                    self._outage.reason = "janus_unreachable"
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            self.janus = janus
            log.info("janus_connected", url=self.base_url, session_id=janus.session_id,
                     reconnect=self._outage is not None)
            why, trouble = await self._follow(janus)
            # The earliest evidence dates the outage: a failed long poll or discovery poll.
            evidence = [t for t in (janus.lost_at, janus.failing_since, trouble) if t > 0]
            since = min(evidence, default=time.time())
            rooms = set(self.taps) | set(self.bridges)
            log.warning("janus_session_lost", url=self.base_url, session_id=janus.session_id,
                        reason=why, rooms=sorted(rooms))
            # Before anything else: flush what each subscription heard up to the loss.
            await self._close_taps("session_lost")
            await janus.destroy()
            self.janus = None
            if self._outage is None:
                self._outage = _Outage(since, "session_lost", rooms)
            else:  # lost again before the rooms were heard: still the same outage
                self._outage.rooms |= rooms
            self.reconnects += 1
            delay = self.backoff_initial_s
            # A session that dies at once (garbage answers) must not spin: back off a little.
            await asyncio.sleep(delay * self._rng.uniform(0.5, 1.0))

    async def _follow(self, janus: JanusSession) -> tuple[str, float]:
        """Discover rooms every poll until the session is lost; return why it ended and when
        discovery started failing (0 if it did not)."""
        failures, trouble = 0, 0.0
        control: JanusHandle | None = None
        while not janus.lost.is_set():
            try:
                if control is None:
                    control = await janus.attach(VIDEOROOM)
                await self._discover(janus, control)
                failures, trouble = 0, 0.0
                self._report_outage()  # the rooms are heard again (if there was an outage)
            except JanusError as exc:
                if janus.lost.is_set():
                    break
                failures += 1
                trouble = trouble or time.time()
                log.warning("janus_discovery_failed", url=self.base_url, error=exc.reason,
                            failures=failures)
                if failures >= self.max_list_failures:
                    return f"{failures} discovery polls failed: {exc.reason}", trouble
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(janus.lost.wait(), self.poll_interval_s)
        return janus.lost_reason, trouble

    async def _discover(self, janus: JanusSession, control: JanusHandle) -> None:
        """Start taps for new rooms; stop the ones whose room went away or whose tap failed."""
        listed: set[int] | None = None
        if self.rooms is None:
            listed = set()
            for entry in await list_rooms(control):
                try:
                    listed.add(int(entry["room"]))
                except (KeyError, TypeError, ValueError):  # string room ids: not supported
                    log.debug("janus_room_skipped", entry=str(entry)[:200])
        wanted = listed if listed is not None else set(self.rooms or ())
        for room, tap in list(self.taps.items()):
            error = tap.error
            if error is not None:
                gone = isinstance(error, JanusError) and error.code == NO_SUCH_ROOM
                await self._stop_tap(room, "no such room" if gone else f"tap failed: {error}",
                                     vanished=gone)
            elif room not in wanted:
                await self._stop_tap(room, "no longer listed", vanished=True)
        for room in sorted(wanted - set(self.taps)):
            await self._start_tap(janus, room)
        await self._follow_bridges(janus)

    async def _follow_bridges(self, janus: JanusSession) -> None:
        """Close bridge taps whose stream ended (noting since when), (re)join missing ones."""
        for room, bridge in list(self.bridges.items()):
            if bridge.ended.is_set():
                del self.bridges[room]
                reason = bridge.end_reason
                log.warning("janus_audiobridge_tap_ended", room_id=room, reason=reason)
                self._bridge_down.setdefault(room, (time.time(), reason))
                await bridge.close()
        for room in self.audiobridge_rooms:
            if room in self.bridges:
                continue
            bridge = AudioBridgeTap(janus, room, self.out, vad=self.vad,
                                    on_event=self._on_event, ice_servers=self.ice_servers)
            try:
                await bridge.start()
            except JanusError as exc:
                if janus.lost.is_set():
                    raise
                if room not in self._bridge_missing:
                    self._bridge_missing.add(room)
                    log.warning("janus_audiobridge_tap_failed", room_id=room, error=exc.reason)
                continue
            self._bridge_missing.discard(room)
            self.bridges[room] = bridge
            log.info("janus_audiobridge_tapped", room_id=room, session_id=janus.session_id)
            down = self._bridge_down.pop(room, None)
            if down is not None:
                self._gap(StreamGap(str(room), "", down[0], max(time.time(), down[0]),
                                    "track_died", "janus"))

    async def _start_tap(self, janus: JanusSession, room: int) -> None:
        tap = VideoRoomTap(janus, room, self.out, vad=self.vad,
                           poll_interval_s=self.poll_interval_s, ice_servers=self.ice_servers,
                           on_event=self._on_event, on_gap=self._on_gap)
        try:
            await tap.start()
        except JanusError as exc:
            await tap.close()
            if janus.lost.is_set():
                raise
            if exc.code == NO_SUCH_ROOM:  # configured but absent (yet): say so once
                if room not in self._missing:
                    self._missing.add(room)
                    log.warning("janus_room_missing", room_id=room, error=exc.reason)
            else:
                log.warning("janus_room_tap_failed", room_id=room, error=exc.reason)
            return
        self._missing.discard(room)
        self.taps[room] = tap
        log.info("janus_room_tapped", room_id=room, session_id=janus.session_id)

    async def _stop_tap(self, room: int, reason: str, *, vanished: bool) -> None:
        tap = self.taps.pop(room)
        log.warning("janus_room_vanished" if vanished else "janus_room_tap_failed",
                    room_id=room, reason=reason, subscriptions=len(tap.subscriptions))
        await tap.close()

    async def _close_taps(self, reason: str) -> None:
        taps, self.taps = self.taps, {}
        bridges, self.bridges = self.bridges, {}
        self._bridge_down.clear()  # a session outage covers those rooms from here on
        closing: list[VideoRoomTap | AudioBridgeTap] = [*taps.values(), *bridges.values()]
        results = await asyncio.gather(*(t.close() for t in closing), return_exceptions=True)
        for room, res in zip([*taps, *bridges], results, strict=True):
            if isinstance(res, BaseException):
                log.error("janus_room_close_failed", room_id=room, reason=reason,
                          error=repr(res))

    def _report_outage(self) -> None:
        """Report the outage in progress, if any, as one gap per room it affected."""
        outage, self._outage = self._outage, None
        if outage is None:
            return
        now = time.time()
        log.warning("janus_outage_over", url=self.base_url, reason=outage.reason,
                    seconds=round(now - outage.since, 3), rooms=sorted(outage.rooms))
        for room in sorted(outage.rooms):
            self._gap(StreamGap(str(room), "", outage.since, max(now, outage.since),
                                outage.reason, "janus"))

    def _gap(self, gap: StreamGap) -> None:
        try:
            self._on_gap(gap)
        except Exception:  # a reporting bug must not stop the tap
            log.exception("janus_gap_hook_failed", room_id=gap.room_id)

    def _http_session(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("JanusRoomTap.start() was not called")
        return self._http
