"""A fake Janus HTTP API on 127.0.0.1: just enough of the core and VideoRoom for the room tap.

Sessions, handles, a long poll that answers keepalives, and VideoRoom ``list`` /
``listparticipants`` over :attr:`FakeJanus.rooms`. No media: rooms have no publishers, so
nothing here needs WebRTC. Faults a test can switch on:

* :meth:`FakeJanus.forget_sessions`: every session is unknown from now on (458), as after a
  Janus restart;
* :attr:`FakeJanus.answer`: ``"ok"``, ``"html"`` (HTTP 502 with an HTML page: a proxy in
  front of a dead Janus), ``"wrong_json"`` (JSON, but not a Janus message);
* :attr:`FakeJanus.room_faults`: room id → ``"garbage"`` (a non-JSON answer to that room's
  ``listparticipants``) or ``"error"`` (a VideoRoom error 499);
* :meth:`FakeJanus.stop` / :meth:`FakeJanus.serve`: take the port down and up again.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiohttp import web

VIDEOROOM = "janus.plugin.videoroom"


class FakeJanus:
    """See the module doc. ``async with FakeJanus() as fake: fake.url``."""

    def __init__(self) -> None:
        self.rooms: dict[int, list[dict[str, Any]]] = {}
        self.room_faults: dict[int, str] = {}
        self.answer = "ok"
        self.sessions: set[int] = set()
        self.requests: list[str] = []
        self.port = 0
        self._ids = itertools.count(1000)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/janus"

    async def __aenter__(self) -> FakeJanus:
        await self.serve()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve(self) -> None:
        app = web.Application()
        app.router.add_post("/janus", self._create)
        app.router.add_post("/janus/{session}", self._session)
        app.router.add_get("/janus/{session}", self._poll)
        app.router.add_post("/janus/{session}/{handle}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def forget_sessions(self) -> None:
        self.sessions.clear()

    # -- handlers ----------------------------------------------------------------------------

    def _fault(self) -> web.Response | None:
        if self.answer == "html":
            return web.Response(status=502, text="<html><h1>502 Bad Gateway</h1></html>",
                                content_type="text/html")
        if self.answer == "wrong_json":
            return web.json_response({"status": "ok", "items": [1, 2, 3]})
        return None

    def _no_session(self, tx: Any) -> web.Response:
        return web.json_response({"janus": "error", "transaction": tx,
                                  "error": {"code": 458, "reason": "No such session"}})

    async def _create(self, request: web.Request) -> web.Response:
        self.requests.append("create")
        if (fault := self._fault()) is not None:
            return fault
        body = await request.json()
        sid = next(self._ids)
        self.sessions.add(sid)
        return web.json_response({"janus": "success", "transaction": body.get("transaction"),
                                  "data": {"id": sid}})

    async def _session(self, request: web.Request) -> web.Response:
        if (fault := self._fault()) is not None:
            return fault
        body = await request.json()
        tx, kind = body.get("transaction"), body.get("janus")
        self.requests.append(kind)
        if int(request.match_info["session"]) not in self.sessions:
            return self._no_session(tx)
        if kind == "attach":
            return web.json_response({"janus": "success", "transaction": tx,
                                      "data": {"id": next(self._ids)}})
        if kind == "destroy":
            self.sessions.discard(int(request.match_info["session"]))
            return web.json_response({"janus": "success", "transaction": tx})
        return web.json_response({"janus": "ack", "transaction": tx})

    async def _poll(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.2)  # a short long poll keeps the tests fast
        if (fault := self._fault()) is not None:
            return fault
        if int(request.match_info["session"]) not in self.sessions:
            return web.json_response([{"janus": "error", "error": {
                "code": 458, "reason": "No such session"}}])
        return web.json_response([{"janus": "keepalive"}])

    async def _handle(self, request: web.Request) -> web.Response:
        if (fault := self._fault()) is not None:
            return fault
        body = await request.json()
        tx, kind = body.get("transaction"), body.get("janus")
        session = int(request.match_info["session"])
        if session not in self.sessions:
            return self._no_session(tx)
        if kind != "message":
            return web.json_response({"janus": "success", "transaction": tx})
        req = body.get("body") or {}
        self.requests.append(str(req.get("request")))
        data: dict[str, Any]
        if req.get("request") == "list":
            data = {"videoroom": "success",
                    "list": [{"room": r, "description": f"room {r}"} for r in self.rooms]}
        elif req.get("request") == "listparticipants":
            room = int(req.get("room", 0))
            fault = self.room_faults.get(room)
            if fault == "garbage":
                return web.Response(text="}{ definitely not json", content_type="text/plain")
            if room not in self.rooms:
                data = {"videoroom": "event", "error_code": 426,
                        "error": f"No such room ({room})"}
            elif fault == "error":
                data = {"videoroom": "event", "error_code": 499, "error": "Unknown error"}
            else:
                data = {"videoroom": "participants", "room": room,
                        "participants": self.rooms[room]}
        else:
            data = {"videoroom": "event", "error_code": 422, "error": "not faked"}
        return web.json_response({"janus": "success", "transaction": tx,
                                  "sender": int(request.match_info["handle"]),
                                  "plugindata": {"plugin": VIDEOROOM, "data": data}})
