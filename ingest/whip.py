"""WHIP (RFC 9725) ingest endpoint: publishers POST an SDP offer, their audio becomes segments.

One session per (room, speaker): an aiortc peer connection whose audio track is read by
:func:`ingest.track.read_pcm`, cut by :class:`ingest.vad.SpeechSegmenter` and put on the output
queue. A session ends on DELETE, when the track ends, when the connection fails or never connects,
or when the same speaker publishes again; its open segment is flushed first in every case.

Status codes for rejected offers (the body is always a plain-text reason):

* 401 missing/wrong bearer token (with ``WWW-Authenticate: Bearer``);
* 400 malformed room/speaker id, or a body that is not an SDP offer;
* 413 body larger than 64 KiB; 415 content type other than ``application/sdp``;
* 422 a valid SDP that cannot be served: no audio m-line, audio not sent, no Opus, or aiortc
  cannot negotiate it (422, "Unprocessable Content", says "well-formed but unusable"; 406 is
  about the Accept header and would mislead);
* 503 (with ``Retry-After``) at ``max_sessions``, while shutting down, or negotiation timeout.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.exceptions import InternalError, InvalidStateError, OperationError

from ingest.frames import SpeechSegment
from ingest.stream_session import EventHook, StreamSession, prepare_audio_transceivers
from ingest.vad import SpeechSegmenter, VadParams
from ingest.whip_checks import SDP, Rejected, check_bearer, check_id, parse_offer

log = structlog.get_logger(__name__)

MAX_OFFER_BYTES = 64 * 1024


class WhipEndpoint:
    """WHIP server routes that turn each publisher's audio into :class:`SpeechSegment` objects.

    Args:
        out: queue the segments are put on (``await out.put``: a full queue slows the session
            reading it, never the others).
        token: bearer token required on POST and DELETE; ``None`` leaves WHIP open.
        vad: segmentation parameters for every session.
        max_sessions: sessions allowed at once (counting ones being negotiated); more get 503.
        on_event: cheap synchronous hook ``(name, fields)`` for metrics/logs of the composition
            root: ``session_started``, ``session_ended`` (``reason``, ``audio_s``, ``segments``),
            ``offer_rejected`` (``kind``: a short stable label, ``status``, ``reason``) and
            ``frames`` (``seconds`` of audio received, about once a second per session).
        ice_servers: STUN/TURN servers for the server's candidates. Default none: aiortc would
            otherwise contact Google's public STUN server, and a server needs only host
            candidates (see :mod:`ingest.ice`).
        connect_timeout_s: a session whose peer has not connected by then is ended.
        negotiate_timeout_s: limit on creating the answer (ICE gathering included).
    """

    def __init__(
        self,
        out: asyncio.Queue[SpeechSegment],
        *,
        token: str | None,
        vad: VadParams,
        max_sessions: int = 256,
        on_event: EventHook | None = None,
        ice_servers: Sequence[RTCIceServer] = (),
        connect_timeout_s: float = 30.0,
        negotiate_timeout_s: float = 10.0,
    ) -> None:
        self._out = out
        self._token = token
        self._vad = vad
        self._max_sessions = max_sessions
        self._on_event = on_event
        self._ice_servers = list(ice_servers)
        self._connect_timeout_s = connect_timeout_s
        self._negotiate_timeout_s = negotiate_timeout_s
        self._sessions: dict[str, StreamSession] = {}
        self._by_speaker: dict[tuple[str, str], StreamSession] = {}
        self._negotiating = 0
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()  # keeps background tasks referenced

    @property
    def session_count(self) -> int:
        """Sessions currently open."""
        return len(self._sessions)

    def routes(self) -> list[web.RouteDef]:
        """The aiohttp routes: ``POST``/``OPTIONS /whip/{room}/{speaker}``, ``DELETE`` below."""
        return [
            web.post("/whip/{room}/{speaker}", self._post),
            web.options("/whip/{room}/{speaker}", self._options),
            web.delete("/whip/{room}/{speaker}/{session}", self._delete),
        ]

    def add_to(self, app: web.Application) -> None:
        """Register :meth:`routes` on ``app``."""
        app.add_routes(self.routes())

    async def close(self) -> None:
        """End every session (flushing their segments) and refuse new ones."""
        self._closing = True
        await asyncio.gather(*(self._end(s, "shutdown") for s in list(self._sessions.values())))
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- HTTP handlers -------------------------------------------------------------------------

    async def _options(self, request: web.Request) -> web.Response:
        # No auth: OPTIONS is how clients (and CORS preflights) discover what POST accepts.
        return web.Response(status=204, headers={"Accept-Post": SDP, "Allow": "OPTIONS, POST"})

    async def _post(self, request: web.Request) -> web.Response:
        room, speaker = request.match_info["room"], request.match_info["speaker"]
        try:
            self._authorize(request)
            check_id("room", room)
            check_id("speaker", speaker)
            if request.content_type != SDP:
                raise Rejected(415, "content_type", f"content type must be {SDP}, got "
                                f"{request.content_type or 'none'}", **{"Accept-Post": SDP})
            if (request.content_length or 0) > MAX_OFFER_BYTES:
                raise Rejected(413, "too_large", f"offer larger than {MAX_OFFER_BYTES} bytes")
            body = await request.read()  # aiohttp caps this at client_max_size (1 MiB)
            if len(body) > MAX_OFFER_BYTES:
                raise Rejected(413, "too_large", f"offer larger than {MAX_OFFER_BYTES} bytes")
            offer, text = parse_offer(body)
            replacing = self._by_speaker.get((room, speaker))
            busy = len(self._sessions) + self._negotiating - (replacing is not None)
            if self._closing or busy >= self._max_sessions:
                raise Rejected(503, "capacity", "too many sessions" if not self._closing
                                else "shutting down", **{"Retry-After": "5"})
            self._negotiating += 1
            try:
                session, answer = await self._negotiate(room, speaker, offer, text)
            finally:
                self._negotiating -= 1
        except Rejected as rej:
            log.info("whip_offer_rejected", room_id=room[:140], speaker_id=speaker[:140],
                     status=rej.status, kind=rej.kind, reason=rej.reason)
            self._emit("offer_rejected", {"kind": rej.kind, "status": rej.status,
                                          "reason": rej.reason})
            return web.Response(status=rej.status, text=rej.reason, headers=rej.headers)
        self._register(session)
        return web.Response(status=201, text=answer, content_type=SDP, headers={
            "Location": f"{request.path.rstrip('/')}/{session.session_id}",
            "ETag": f'"{session.session_id}"',
        })

    async def _delete(self, request: web.Request) -> web.Response:
        try:
            self._authorize(request)
        except Rejected as rej:
            return web.Response(status=rej.status, text=rej.reason, headers=rej.headers)
        session = self._sessions.get(request.match_info["session"])
        if session is None or (session.room_id, session.speaker_id) != (
                request.match_info["room"], request.match_info["speaker"]):
            return web.Response(status=404, text="no such WHIP session")
        await self._end(session, "deleted")  # returns once the segments are on the queue
        return web.Response(status=200)

    def _authorize(self, request: web.Request) -> None:
        check_bearer(request.headers.get("Authorization"), self._token)

    # -- sessions ------------------------------------------------------------------------------

    async def _negotiate(self, room: str, speaker: str, offer: aiortc_sdp.SessionDescription,
                         text: str) -> tuple[StreamSession, str]:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers))
        session_id = uuid.uuid4().hex
        session = StreamSession(session_id, room, speaker, pc,
                           SpeechSegmenter(room, speaker, session_id, self._vad))
        audio = prepare_audio_transceivers(pc, offer)
        assert audio is not None  # parse_offer checked

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track is audio.receiver.track and session.task is None:
                session.task = asyncio.create_task(self._run(session, track))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                session.connected = True
            elif pc.connectionState == "failed":
                self._spawn(self._end(session, "connection_failed"))

        try:
            async with asyncio.timeout(self._negotiate_timeout_s):
                await pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="offer"))
                # Non-trickle: setLocalDescription returns after ICE gathering, so the answer
                # carries every candidate (aiortc cannot trickle anyway).
                await pc.setLocalDescription(await pc.createAnswer())
        except BaseException as exc:
            session.ending = True  # never started: its reader must not report an end
            await pc.close()
            if isinstance(exc, ValueError | InternalError | InvalidStateError):
                raise Rejected(400, "invalid_sdp", f"offer is not a valid SDP: {exc}") from exc
            if isinstance(exc, OperationError):
                raise Rejected(422, "negotiation", f"offer cannot be negotiated: {exc}") from exc
            if isinstance(exc, TimeoutError):
                raise Rejected(503, "timeout", "timed out creating the answer",
                                **{"Retry-After": "5"}) from exc
            raise
        return session, pc.localDescription.sdp

    def _register(self, session: StreamSession) -> None:
        key = (session.room_id, session.speaker_id)
        old = self._by_speaker.get(key)
        self._sessions[session.session_id] = session
        self._by_speaker[key] = session
        if old is not None:
            self._spawn(self._end(old, "replaced"))
        if self._closing:  # close() began while this offer was negotiated
            self._spawn(self._end(session, "shutdown"))
        session.watchdog = asyncio.get_running_loop().call_later(
            self._connect_timeout_s, self._check_connected, session)
        log.info("whip_session_started", **session.fields())
        self._emit("session_started", session.fields())

    def _check_connected(self, session: StreamSession) -> None:
        if not session.ending and session.pc.connectionState != "connected":
            self._spawn(self._end(session, "connect_timeout"))

    async def _run(self, session: StreamSession, track: Any) -> None:
        reason = await session.pump(track, self._out, self._emit)
        if not session.ending:  # the track ended on its own: close the rest of the session
            self._spawn(self._end(session, reason))

    async def _end(self, session: StreamSession, reason: str) -> None:
        """Close the peer connection, let the reader flush, then forget the session. Idempotent."""

        def forget() -> None:
            self._sessions.pop(session.session_id, None)
            key = (session.room_id, session.speaker_id)
            if self._by_speaker.get(key) is session:
                del self._by_speaker[key]

        fields = await session.end(reason, forget=forget)
        if fields is not None:
            log.info("whip_session_ended", **fields)
            self._emit("session_ended", fields)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _emit(self, name: str, fields: dict[str, Any]) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, fields)
        except Exception:  # a metrics bug must not break ingest
            log.exception("whip_event_hook_failed", event=name)
