"""WHEP (draft-ietf-wish-whep) client: pull one remote audio stream and cut it into segments.

Non-trickle, client-sent offer: an aiortc ``recvonly`` audio transceiver, the offer created
after ICE gathering completed (aiortc cannot trickle), ``POST`` as ``application/sdp`` →
``201`` with the SDP answer and a ``Location`` naming the session resource → media, read by
:class:`ingest.stream_session.StreamSession` exactly as a WHIP publisher's is → ``DELETE`` the
resource on :meth:`WhepSource.stop`.

Servers that only do server-sent offers answer ``406`` with an offer (simple-whep-server with a
VideoRoom backend does); that needs ``PATCH``, which this client does not implement: it is
reported as a :class:`WhepError` like any other refusal.

Offsets in the segments count from the first audio received, not from the remote stream's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp
import structlog
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from yarl import URL

from ingest.errors import WhepError
from ingest.frames import SpeechSegment
from ingest.stream_session import EventHook, StreamSession
from ingest.vad import SpeechSegmenter, VadParams

log = structlog.get_logger(__name__)

SDP = "application/sdp"




class WhepSource:
    """Pulls the audio of one WHEP endpoint into ``out`` as :class:`SpeechSegment` objects.

    Use as ``async with WhepSource(...) as src:`` (or :meth:`start` / :meth:`stop`); wait for
    the remote end with :meth:`wait_closed`.

    Args:
        url: the WHEP endpoint, e.g. ``https://sfu.example/whep/endpoint/stage``.
        room_id: room id stamped on the segments.
        speaker_id: speaker id stamped on the segments.
        out: queue the segments are put on (``await out.put``: a full queue slows the reader).
        token: bearer token sent on POST and DELETE, if the endpoint needs one.
        vad: segmentation parameters (defaults if ``None``).
        ice_servers: STUN/TURN servers; default none (host candidates only, see
            :mod:`ingest.ice`), so nothing is sent to a public STUN server.
        connect_timeout_s: how long ICE + DTLS may take once the answer is in.
        request_timeout_s: HTTP timeout of the POST and the DELETE.
        on_event: the composition root's ``(name, fields)`` hook, as for WHIP sessions:
            ``session_started``, ``session_ended`` and ``frames``.
    """

    def __init__(
        self,
        url: str,
        *,
        room_id: str,
        speaker_id: str,
        out: asyncio.Queue[SpeechSegment],
        token: str | None = None,
        vad: VadParams | None = None,
        ice_servers: Sequence[RTCIceServer] = (),
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 10.0,
        on_event: EventHook | None = None,
    ) -> None:
        self.url = url
        self.room_id = room_id
        self.speaker_id = speaker_id
        self._out = out
        self._headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        self._vad = vad or VadParams()
        self._ice_servers = list(ice_servers)
        self._connect_timeout_s = connect_timeout_s
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self.resource: URL | None = None
        """The session resource (``Location``) while subscribed."""
        self.session: StreamSession | None = None
        self.end_reason = ""
        """Why the stream ended (``track_ended``, ``connection_failed``, ``stopped``...)."""
        self._on_event = on_event
        self._closed = asyncio.Event()
        self._stopping: asyncio.Future[None] | None = None

    async def __aenter__(self) -> WhepSource:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Subscribe and return once the WebRTC connection is up (audio then flows to ``out``).

        Raises:
            WhepError: the server is unreachable, refused the offer (its status and reason),
                answered without SDP or ``Location``, or the connection did not come up in time.
        """
        if self.session is not None:
            raise RuntimeError("a WhepSource subscribes once; make a new one to resubscribe")
        stream_id = f"whep:{uuid.uuid4().hex}"
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers))
        session = StreamSession(stream_id, self.room_id, self.speaker_id, pc,
                                SpeechSegmenter(self.room_id, self.speaker_id, stream_id,
                                                self._vad))
        self.session = session
        connected, failed = asyncio.Event(), asyncio.Event()
        audio = pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track is audio.receiver.track and session.task is None:
                session.task = asyncio.create_task(self._run(session, track))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected":
                session.connected = True
                connected.set()
            elif pc.connectionState in ("failed", "closed"):
                failed.set()
                if pc.connectionState == "failed" and session.connected:
                    self.end_reason = self.end_reason or "connection_failed"
                    self._stopping = asyncio.ensure_future(self.stop())  # keep a reference

        try:
            await pc.setLocalDescription(await pc.createOffer())  # returns with all candidates
            answer = await self._post(pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=_fix_setup(answer),
                                                                 type="answer"))
            waits = [asyncio.ensure_future(connected.wait()),
                     asyncio.ensure_future(failed.wait())]
            try:
                await asyncio.wait(waits, timeout=self._connect_timeout_s,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            if not connected.is_set():
                raise WhepError(0, f"WebRTC connection to {self.url} not established within "
                                   f"{self._connect_timeout_s:g} s ({pc.connectionState})")
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, ValueError):  # aiortc refusing the answer SDP
                raise WhepError(201, f"unusable SDP answer: {exc}") from exc
            raise
        log.info("whep_subscribed", url=self.url, resource=str(self.resource),
                 **session.fields())
        self._emit("session_started", session.fields())

    async def wait_closed(self) -> str:
        """Wait until the stream ended (remote end, failure or :meth:`stop`); the reason."""
        await self._closed.wait()
        return self.end_reason

    async def stop(self) -> None:
        """DELETE the resource, close the connection and let the reader flush. Idempotent."""
        session = self.session
        if session is None or session.ending:
            return
        self.end_reason = self.end_reason or "stopped"
        resource, self.resource = self.resource, None
        if resource is not None:
            await self._delete(resource)
        # Closing ends the track after the frames already decoded: the reader drains them,
        # flushes the segmenter and returns (the same order as a WHIP session's end).
        fields = await session.end(self.end_reason)
        self._closed.set()
        if fields is not None:
            log.info("whep_ended", **fields)
            if session.connected:  # only sessions that were reported started
                self._emit("session_ended", fields)

    async def _run(self, session: StreamSession, track: Any) -> None:
        reason = await session.pump(track, self._out, self._emit)
        if not session.ending:  # the remote end stopped sending: the subscription is over
            self.end_reason = self.end_reason or reason
            await self.stop()

    def _emit(self, name: str, fields: dict[str, Any]) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, fields)
        except Exception:  # a metrics bug must not break ingest
            log.exception("whep_event_hook_failed", event=name)

    async def _post(self, offer: str) -> str:
        """POST the offer; return the answer SDP (``self.resource`` set) or raise WhepError."""
        async with aiohttp.ClientSession(timeout=self._timeout) as http:
            try:
                async with http.post(self.url, data=offer.encode(),
                                     headers={**self._headers, "Content-Type": SDP}) as resp:
                    body = await resp.text()
                    location = resp.headers.get("Location")
                    ctype = resp.content_type
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise WhepError(0, f"cannot reach {self.url}: {exc or type(exc).__name__}") \
                    from exc
        if resp.status != 201:
            hint = " (server-sent offers are not supported)" if resp.status == 406 else ""
            raise WhepError(resp.status, (body.strip()[:300] or str(resp.reason)) + hint)
        if location:
            # Known from here on, so that a failure below still DELETEs the session.
            self.resource = URL(self.url).join(URL(location))
        if ctype != SDP or not body.lstrip().startswith("v=0"):
            raise WhepError(resp.status, f"the 201 answer is not SDP (Content-Type "
                                         f"{ctype or 'none'}): {body.strip()[:100]!r}")
        if not location:
            raise WhepError(resp.status, "the 201 answer has no Location header")
        return body

    async def _delete(self, resource: URL) -> None:
        """End the session on the server; failures are only logged (we are leaving anyway)."""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with aiohttp.ClientSession(timeout=self._timeout) as http, \
                    http.delete(resource, headers=self._headers) as resp:
                if resp.status not in (200, 202, 204, 404):
                    log.warning("whep_delete_failed", resource=str(resource),
                                status=resp.status, reason=(await resp.text()).strip()[:200])


def _fix_setup(answer: str) -> str:
    """Read ``a=setup:actpass`` in an answer as ``active``.

    An answer must choose a DTLS role (RFC 8842 §5.3), but Janus's Streaming plugin (1.1.2)
    answers a client offer with ``actpass`` and then acts as the DTLS client, the answerer's
    default role (RFC 5763 §5), which aiortc would otherwise refuse outright.
    """
    return answer.replace("a=setup:actpass", "a=setup:active")
