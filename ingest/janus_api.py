"""A small asyncio client for the Janus WebRTC server's HTTP (REST) API, on aiohttp.

A :class:`JanusSession` long-polls ``GET /janus/<session>?maxev=N``, sends a keepalive every
25 s and routes events: the one carrying a request's transaction answers it
(:meth:`JanusHandle.send`), anything else about a handle (``webrtcup``, ``hangup``, ``media``,
``detached``, plugin events) lands on :attr:`JanusHandle.events`. Every problem is a
:class:`JanusError`: Janus and plugin errors with their code, garbage answers, unreachable
servers and timeouts with code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from ingest.errors import IngestError

log = structlog.get_logger(__name__)

JsonDict = dict[str, Any]
KEEPALIVE_S = 25.0
"""Keepalive period: below Janus's default ``session_timeout`` of 60 s."""
POLL_TIMEOUT_S = 45.0
"""HTTP timeout of one long poll: Janus answers an idle poll with a keepalive after 30 s."""


class JanusError(IngestError):
    """Janus refused a request or answered something unusable.

    Attributes:
        code: Janus or plugin error code (e.g. 458 no such session, 426 no such room); 0 when
            there was no error code (unreachable server, garbage answer, timeout).
        reason: Janus's reason, or what went wrong.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"Janus error {code}: {reason}" if code else f"Janus error: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class JanusReply:
    """A plugin's answer: its ``plugindata.data`` and the JSEP (SDP offer/answer), if any."""

    data: JsonDict
    jsep: JsonDict | None = None


def _transaction() -> str:
    return secrets.token_hex(8)


def _code(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _check(msg: Any, what: str) -> JsonDict:
    """Return ``msg`` if it is a Janus message that is not an error; raise JanusError if not."""
    if not isinstance(msg, dict) or not isinstance(msg.get("janus"), str):
        raise JanusError(0, f"{what}: not a Janus message: {str(msg)[:200]!r}")
    if msg["janus"] == "error":
        err = msg.get("error")
        err = err if isinstance(err, dict) else {}
        raise JanusError(_code(err.get("code")), str(err.get("reason") or "unknown error"))
    return msg


def _new_id(msg: JsonDict, what: str) -> int:
    """The id a ``create``/``attach`` success carries in ``data.id``."""
    try:
        return int(msg["data"]["id"])
    except (KeyError, TypeError, ValueError):
        raise JanusError(0, f"{what}: no id in {str(msg)[:200]!r}") from None


def _reply(msg: JsonDict, what: str) -> JanusReply:
    """The plugin reply carried by a ``success``/``event`` message (plugin errors raised)."""
    data = (msg.get("plugindata") or {}).get("data")
    if not isinstance(data, dict):
        raise JanusError(0, f"{what}: no plugindata in {str(msg)[:200]!r}")
    if "error_code" in data or "error" in data:
        raise JanusError(_code(data.get("error_code")), str(data.get("error")))
    return JanusReply(data, msg.get("jsep"))


class JanusSession:
    """A Janus session. Create with :meth:`create`; end with :meth:`destroy` (or ``async with``).

    Args:
        http: the aiohttp session to use (not closed here).
        base_url: the API root, e.g. ``http://10.213.1.1:8088/janus``.
        session_id: the id Janus gave the session.
        maxev: events fetched per long poll.
        request_timeout_s: how long a request (including an asynchronous plugin answer) may take.
    """

    def __init__(self, http: aiohttp.ClientSession, base_url: str, session_id: int, *,
                 maxev: int = 10, request_timeout_s: float = 10.0) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.session_id = session_id
        self.url = f"{self.base_url}/{session_id}"
        self.maxev = maxev
        self.request_timeout_s = request_timeout_s
        self.handles: dict[int, JanusHandle] = {}
        self.lost = asyncio.Event()
        """Set when the session ended on the server side or the server became unreachable."""
        self.lost_reason = ""
        self.lost_at = 0.0
        """Unix time of the first sign of the loss (e.g. the first failed long poll)."""
        self._first_failure = 0.0
        self._pending: dict[str, asyncio.Future[JsonDict]] = {}
        self._tasks = [asyncio.create_task(self._poll()), asyncio.create_task(self._keepalive())]

    @classmethod
    async def create(cls, http: aiohttp.ClientSession, base_url: str,
                     **kwargs: Any) -> JanusSession:
        """Create a session on the server at ``base_url``.

        Raises:
            JanusError: the server is unreachable or refused.
        """
        msg = await _post(http, base_url.rstrip("/"),
                          {"janus": "create", "transaction": _transaction()}, 10.0)
        return cls(http, base_url, _new_id(msg, "create"), **kwargs)

    @property
    def failing_since(self) -> float:
        """Unix time of the first of the long polls failing right now (0: they are fine)."""
        return self._first_failure

    async def __aenter__(self) -> JanusSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.destroy()

    async def attach(self, plugin: str) -> JanusHandle:
        """Attach a handle to ``plugin`` (e.g. ``janus.plugin.videoroom``)."""
        msg = await self.request(self.url, {"janus": "attach", "plugin": plugin})
        handle = JanusHandle(self, _new_id(msg, "attach"), plugin)
        self.handles[handle.handle_id] = handle
        return handle

    async def request(self, url: str, body: JsonDict) -> JsonDict:
        """POST ``body`` with a fresh transaction id; return the answer that completes it.

        That is the synchronous answer unless it is the ``ack`` of a plugin message, in which
        case the event with the same transaction, received by the long poll, is returned.
        """
        tx = _transaction()
        fut: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        self._pending[tx] = fut  # before POSTing: the event may overtake the ack
        try:
            async with asyncio.timeout(self.request_timeout_s):
                msg = await _post(self.http, url, {**body, "transaction": tx},
                                  self.request_timeout_s)
                if msg["janus"] != "ack" or body["janus"] != "message":
                    return msg  # only a plugin message's ack announces an answer to come
                return _check(await fut, str(body.get("janus")))
        except TimeoutError:
            raise JanusError(0, f"no answer to {body.get('janus')} within "
                                f"{self.request_timeout_s:g} s") from None
        finally:
            self._pending.pop(tx, None)

    async def destroy(self) -> None:
        """Stop polling and destroy the session on the server (errors there are only logged)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if not self.lost.is_set():
            try:
                await _post(self.http, self.url, {"janus": "destroy",
                                                  "transaction": _transaction()}, 5.0)
            except JanusError as exc:
                log.info("janus_destroy_failed", session_id=self.session_id, error=str(exc))
        self._lose("destroyed")

    def _lose(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self.lost_reason = reason
        self.lost_at = self._first_failure or time.time()
        self.lost.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(JanusError(0, f"session lost: {reason}"))
        for handle in self.handles.values():
            handle.events.put_nowait({"janus": "session_lost", "reason": reason})

    async def _poll(self) -> None:
        failures = 0
        while True:
            try:
                async with self.http.get(
                        self.url, params={"maxev": str(self.maxev)},
                        timeout=aiohttp.ClientTimeout(total=POLL_TIMEOUT_S)) as resp:
                    body = await resp.json(content_type=None)
                failures, self._first_failure = 0, 0.0
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                failures += 1
                # A dead server fails the poll at once: its first failure dates the outage.
                self._first_failure = self._first_failure or time.time()
                if failures >= 3:
                    self._lose(f"long poll failed: {exc or type(exc).__name__}")
                    return
                await asyncio.sleep(0.5)
                continue
            for msg in body if isinstance(body, list) else [body]:
                if not isinstance(msg, dict) or not isinstance(msg.get("janus"), str):
                    log.warning("janus_bad_event", session_id=self.session_id, event=str(msg))
                else:
                    self._dispatch(msg)
            if self.lost.is_set():
                return

    def _dispatch(self, msg: JsonDict) -> None:
        """Hand an event to the request awaiting its transaction, or to its handle's queue."""
        kind = msg["janus"]
        fut = self._pending.get(str(msg.get("transaction")))
        if fut is not None and kind != "ack" and not fut.done():
            fut.set_result(msg)  # errors included: the request raises them
        elif kind == "timeout":
            self._lose("session timed out")
        elif kind == "error" and (msg.get("error") or {}).get("code") == 458:
            self._lose("no such session (Janus restarted or timed it out)")
        elif kind != "keepalive":
            handle = self.handles.get(_code(msg.get("sender")))
            if handle is not None:
                handle.events.put_nowait(msg)
            else:
                log.debug("janus_event_unrouted", session_id=self.session_id, janus=kind)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            try:
                await self.request(self.url, {"janus": "keepalive"})
            except JanusError as exc:
                log.warning("janus_keepalive_failed", session_id=self.session_id, error=str(exc))


class JanusHandle:
    """A plugin handle of a :class:`JanusSession` (see the module doc)."""

    def __init__(self, session: JanusSession, handle_id: int, plugin: str) -> None:
        self.session = session
        self.handle_id = handle_id
        self.plugin = plugin
        self.url = f"{session.url}/{handle_id}"
        self.events: asyncio.Queue[JsonDict] = asyncio.Queue()
        """Unsolicited events (and ``{"janus": "session_lost"}`` if the session is lost)."""

    async def send(self, body: JsonDict, jsep: JsonDict | None = None) -> JanusReply:
        """Send a plugin request; return the plugin's answer (raises its error as JanusError)."""
        message: JsonDict = {"janus": "message", "body": body}
        if jsep is not None:
            message["jsep"] = jsep
        msg = await self.session.request(self.url, message)
        return _reply(msg, str(body.get("request")))

    async def detach(self) -> None:
        """Detach from the plugin (a handle already gone is fine)."""
        self.session.handles.pop(self.handle_id, None)
        if self.session.lost.is_set():
            return
        with contextlib.suppress(JanusError):
            await self.session.request(self.url, {"janus": "detach"})


async def _post(http: aiohttp.ClientSession, url: str, body: JsonDict,
                timeout_s: float) -> JsonDict:
    """POST a Janus API message; the answer, Janus errors raised as :class:`JanusError`."""
    try:
        async with http.post(url, json=body,
                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            text = await resp.text()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise JanusError(0, f"cannot reach {url}: {exc or type(exc).__name__}") from exc
    try:
        msg = json.loads(text)
    except ValueError:
        raise JanusError(0, f"{body.get('janus')}: HTTP {status}, not JSON: {text[:200]!r}") \
            from None
    return _check(msg, str(body.get("janus")))
