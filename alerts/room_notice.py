"""In-room notices: tell a room's host, inside the room, that something said broke a rule.

Delivered as a chat message through the Janus TextRoom plugin, which only carries room traffic
over a WebRTC data channel: attach ``janus.plugin.textroom`` → ``{"request": "setup"}`` → Janus's
JSEP offer (one ``m=application`` line) → aiortc's answer with a data channel, sent with
``{"request": "ack"}`` → on the open channel ``{"textroom": "join", ...}`` and
``{"textroom": "message", ...}``, each answered on the channel by ``success`` or ``error`` with
the same ``transaction``. Room management (``exists``, ``create``) goes over the plain HTTP
plugin API (:mod:`ingest.janus_api`), which needs no data channel.

One Janus session and data channel per notifier, set up on the first notice and reused (rooms
are joined once each); a broken connection is set up again once per notice before giving up.

:class:`RoomNoticeSink` sends notices in the background. With the escalation ladder on (the
default, ``policy.escalate``) it posts the ladder's host warnings (:meth:`RoomNoticeSink.warn`): a
rant is one notice. Without it, it decides per delivered alert (:meth:`RoomNoticeSink.submit`:
confident transcript, severity threshold, per-room cooldown).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

import aiohttp
import structlog
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from ingest.janus_api import JanusError, JanusHandle, JanusSession, JsonDict
from policy.escalation import Escalation
from policy.frames import Alert

log = structlog.get_logger(__name__)

TEXTROOM = "janus.plugin.textroom"


def textroom_id(room_id: str) -> int | str:
    """TextRoom ids are numbers unless Janus runs with ``string_ids``: digits become an int."""
    return int(room_id) if room_id.isdigit() else room_id


def notice_text(alert: Alert) -> str:
    """A short host notice for ``alert``: who, which category, how severe (not the words)."""
    who = alert.transcript.segment.speaker_name or alert.speaker_id
    return (f"RoomWarden: {who} may have broken the room rules ({alert.category}, "
            f"{alert.severity}); suggested action: {alert.suggestion}.")


def host_warning_text(escalation: Escalation, speaker_name: str = "") -> str:
    """The in-room notice for an escalation's host warning: who (the display name where the
    source has one), and why (not the words said)."""
    who = speaker_name or escalation.speaker_id
    return (f"RoomWarden: {who} may have broken the room rules "
            f"({escalation.reason}). Host: please remind them of the rules.")


class _Channel:
    """A TextRoom handle's peer connection and open data channel, with request matching."""

    def __init__(self, janus: JanusSession, handle: JanusHandle, pc: RTCPeerConnection,
                 channel: RTCDataChannel) -> None:
        self.janus, self.handle, self.pc, self.channel = janus, handle, pc, channel
        self.joined: set[int | str] = set()
        self.pending: dict[str, asyncio.Future[JsonDict]] = {}
        channel.on("message", self._on_message)

    def _on_message(self, message: str | bytes) -> None:
        try:
            msg = json.loads(message)
        except ValueError:
            return
        fut = self.pending.get(str(msg.get("transaction"))) if isinstance(msg, dict) else None
        if fut is not None and not fut.done():
            fut.set_result(msg)  # anything else (others' chat, joins) is not ours to handle

    @property
    def alive(self) -> bool:
        return (self.channel.readyState == "open" and self.pc.connectionState == "connected"
                and not self.janus.lost.is_set())

    async def request(self, body: JsonDict, timeout_s: float) -> JsonDict:
        """Send a TextRoom request over the channel; its ``success`` answer or JanusError."""
        tx = secrets.token_hex(8)
        fut: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        self.pending[tx] = fut
        try:
            self.channel.send(json.dumps({**body, "transaction": tx}))
            async with asyncio.timeout(timeout_s):
                msg = await fut
        except TimeoutError:
            raise JanusError(0, f"textroom {body.get('textroom')}: no answer within "
                                f"{timeout_s:g} s") from None
        finally:
            self.pending.pop(tx, None)
        if msg.get("textroom") == "error":
            raise JanusError(int(msg.get("error_code") or 0), str(msg.get("error")))
        return msg

    async def close(self) -> None:
        with contextlib.suppress(JanusError):
            await self.janus.destroy()
        await self.pc.close()


class JanusRoomNotifier:
    """Posts notices into Janus TextRoom rooms (see the module doc).

    Use as ``async with JanusRoomNotifier(url) as n: await n.notify("1234", "...")``, or call
    :meth:`close` when done.

    Args:
        base_url: Janus HTTP API root, e.g. ``http://janus:8088/janus``.
        display: the name the notices appear under in the room.
        create_missing: create a TextRoom room that does not exist yet (with Janus's defaults:
            not permanent, no PIN) rather than fail.
        ice_servers: STUN/TURN servers; default none (host candidates only, see
            :mod:`ingest.ice`).
        timeout_s: limit on setting up the data channel, and on each request.
    """

    def __init__(self, base_url: str, *, display: str = "RoomWarden",
                 create_missing: bool = True, ice_servers: Sequence[RTCIceServer] = (),
                 timeout_s: float = 10.0) -> None:
        self.base_url = base_url
        self.display = display
        self.create_missing = create_missing
        self._ice_servers = list(ice_servers)
        self._timeout_s = timeout_s
        self._http: aiohttp.ClientSession | None = None
        self._conn: _Channel | None = None
        self._lock = asyncio.Lock()  # one setup at a time; notices go out in order
        self._username = f"roomwarden-{secrets.token_hex(4)}"

    async def __aenter__(self) -> JanusRoomNotifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def notify(self, room_id: str, text: str) -> None:
        """Post ``text`` into TextRoom ``room_id`` (joining it first, creating it if allowed).

        Raises:
            JanusError: Janus is unreachable, refused (e.g. 417 no such room with
                ``create_missing=False``), or the data channel did not open in time.
        """
        room = textroom_id(room_id)
        async with self._lock:
            for attempt in (1, 2):
                conn = await self._connect()
                try:
                    if room not in conn.joined:
                        await self._join(conn, room)
                    await conn.request({"textroom": "message", "room": room, "text": text,
                                        "ack": True}, self._timeout_s)
                    log.info("room_notice_sent", room_id=room_id, chars=len(text))
                    return
                except JanusError as exc:
                    if conn.alive or attempt == 2:
                        raise  # a refusal, not a broken connection: retrying will not help
                    log.warning("room_notice_retry", room_id=room_id, error=str(exc))
                    await self._drop()

    async def close(self) -> None:
        """Leave the rooms and end the Janus session."""
        async with self._lock:
            if self._conn is not None and self._conn.alive:
                for room in list(self._conn.joined):
                    with contextlib.suppress(JanusError):
                        await self._conn.request({"textroom": "leave", "room": room}, 2.0)
            await self._drop()
            if self._http is not None:
                await self._http.close()
                self._http = None

    async def _join(self, conn: _Channel, room: int | str) -> None:
        exists = (await conn.handle.send({"request": "exists", "room": room})).data
        if not exists.get("exists"):
            if not self.create_missing:
                raise JanusError(417, f"no such TextRoom room {room}")
            await conn.handle.send({"request": "create", "room": room,
                                    "description": "RoomWarden notices"})
            log.info("room_notice_room_created", room_id=str(room))
        await conn.request({"textroom": "join", "room": room, "username": self._username,
                            "display": self.display}, self._timeout_s)
        conn.joined.add(room)

    async def _connect(self) -> _Channel:
        if self._conn is not None and self._conn.alive:
            return self._conn
        await self._drop()
        if self._http is None:
            self._http = aiohttp.ClientSession()
        janus = await JanusSession.create(self._http, self.base_url,
                                          request_timeout_s=self._timeout_s)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers))
        try:
            handle = await janus.attach(TEXTROOM)
            offer = (await handle.send({"request": "setup"})).jsep
            if not offer or offer.get("type") != "offer":
                raise JanusError(0, "textroom setup: no JSEP offer")
            await pc.setRemoteDescription(RTCSessionDescription(**offer))
            # Our own channel, like janus.js: TextRoom answers on whichever channel it is asked.
            channel = pc.createDataChannel("JanusDataChannel", ordered=True)
            opened = asyncio.Event()
            channel.on("open", opened.set)
            await pc.setLocalDescription(await pc.createAnswer())  # candidates included
            await handle.send({"request": "ack"},
                              jsep={"type": "answer", "sdp": pc.localDescription.sdp})
            try:
                async with asyncio.timeout(self._timeout_s):
                    await opened.wait()
            except TimeoutError:
                raise JanusError(0, f"textroom data channel not open within "
                                    f"{self._timeout_s:g} s ({pc.connectionState})") from None
        except BaseException:
            await pc.close()
            with contextlib.suppress(JanusError):
                await janus.destroy()
            raise
        self._conn = _Channel(janus, handle, pc, channel)
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()



SEVERITY_ORDER: tuple[str, ...] = ("low", "medium", "high", "critical")
NoticeOutcome = Callable[[str], None]
"""Told each alert's outcome: ``sent``, ``failed``, ``cooldown``, ``low_confidence``,
``below_severity`` (the composition root counts them)."""


class Notifier(Protocol):
    async def notify(self, room_id: str, text: str) -> None: ...

    async def close(self) -> None: ...


class RoomNoticeSink:
    """Decides which delivered alerts warn the room's host, and sends them without blocking.

    :meth:`submit` is synchronous and returns at once (call it from the pipeline's
    ``on_alert``): a notice goes out only for an alert on a ``confident`` transcript (low
    confidence never triggers automatic action), of severity ``min_severity`` or above, and at
    most once per room per ``cooldown_s``; it is sent by a background task, so a slow or failing
    Janus never holds the pipeline back (failures are logged and reported as ``failed``).

    Args:
        notifier: what posts into the room (:class:`JanusRoomNotifier`).
        min_severity: least severe alert that notifies.
        cooldown_s: per-room quiet time after a notice (counted from the attempt).
        on_outcome: told every submitted alert's outcome.
        clock: monotonic clock (tests pass a fake).
    """

    def __init__(self, notifier: Notifier, *, min_severity: str = "high",
                 cooldown_s: float = 60.0, on_outcome: NoticeOutcome | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if min_severity not in SEVERITY_ORDER:
            raise ValueError(f"unknown severity {min_severity!r}")
        self.notifier = notifier
        self._min = SEVERITY_ORDER.index(min_severity)
        self.cooldown_s = cooldown_s
        self._on_outcome = on_outcome or (lambda outcome: None)
        self._clock = clock
        self._last: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, alert: Alert) -> str | None:
        """Consider ``alert``; return the outcome if decided now (None: a notice is on its way)."""
        if alert.transcript.confidence_class != "confident":
            return self._outcome("low_confidence")
        if SEVERITY_ORDER.index(alert.severity) < self._min:
            return self._outcome("below_severity")
        now = self._clock()
        last = self._last.get(alert.room_id)
        if last is not None and now - last < self.cooldown_s:
            log.info("room_notice_cooldown", room_id=alert.room_id, alert_id=alert.alert_id)
            return self._outcome("cooldown")
        self._last[alert.room_id] = now
        self._spawn(self._send(alert.room_id, alert.alert_id, notice_text(alert)))
        return None

    def warn(self, escalation: Escalation, alert: Alert) -> None:
        """Post an escalation's host warning into the room, in the background. The escalation
        ladder already decided it (confidence, cooldowns), so no threshold applies here."""
        text = host_warning_text(escalation, alert.transcript.segment.speaker_name)
        self._spawn(self._send(escalation.room_id, alert.alert_id, text))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Let notices on their way finish (up to ``timeout_s``), then close the notifier."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
            for task in list(self._tasks):
                task.cancel()
        await self.notifier.close()

    async def _send(self, room_id: str, alert_id: str, text: str) -> None:
        try:
            await self.notifier.notify(room_id, text)
        except Exception as exc:  # Janus down or refusing: logged and counted, never raised
            log.warning("room_notice_failed", room_id=room_id, alert_id=alert_id,
                        error=str(exc))
            self._outcome("failed")
            return
        self._outcome("sent")

    def _outcome(self, outcome: str) -> str:
        try:
            self._on_outcome(outcome)
        except Exception:
            log.exception("room_notice_outcome_hook_failed")
        return outcome
