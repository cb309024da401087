"""The console's HTTP app (aiohttp): pages, the live stream, alert details, reviews, the export.

=====================================  ==========  ============================================
route                                  who         what
=====================================  ==========  ============================================
``GET /``                              anyone      login page (logged in: redirect to /console)
``GET /console``                       logged in   the console page (else redirect to /)
``GET /static/*``                      anyone      the page's JS and CSS (no data in them)
``POST /api/login`` / ``/api/logout``  anyone      token -> session cookie / end it
``GET /api/me``                        logged in   name, role, what the role may do
``GET /api/stream``                    logged in   Server-Sent Events: alert, review, risk, ready
``GET /api/alerts``                    logged in   recent alerts (``severity``/``category``/
                                                   ``room`` filters, ``limit``), newest first
``GET /api/alerts/{id}``               logged in   the alert, the room's transcripts in the minute
                                                   before it, speaker, rule and score, clip URL
``GET /api/alerts/{id}/clip``          logged in   the evidence WAV (``audio/wav``), 404 if none
``POST /api/alerts/{id}/review``       operator    ``{action, note?, request_id?}`` -> answered
                                                   after Kafka acked the review
``GET /api/rooms/risk``                logged in   per-room risk view, riskiest first
``GET /api/export``                    auditor     the audit bundle (``room, from, to, format``)
``GET /healthz``                       anyone      ``{ok, kafka_connected, clients, alerts}``
=====================================  ==========  ============================================

Logged in = a session cookie from ``/api/login`` or ``Authorization: Bearer <token>``. Every
response carries a strict Content-Security-Policy (``'self'`` only: no inline script, no CDN),
``nosniff``, ``no-referrer`` and ``frame-ancestors 'none'``; API answers are ``no-store``.
State-changing requests with an ``Origin`` from another site are refused (403) on top of the
``SameSite=Strict`` cookie, and reviews must be JSON (a plain cross-site form cannot send it).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from alerts.console.auth import ConsoleAuth, SessionStore, TokenBook
from alerts.console.export_route import Exporter, export_handler
from alerts.console.feed import AlertFeed, FeedFullError, sse_frame
from alerts.console.history import AuditReader, alert_context, evidence_of
from alerts.console.hooks import EventHook, emit_event
from alerts.console.live import LiveFeed
from alerts.console.reviews import (
    REVIEW_ACTIONS,
    ReviewDesk,
    ReviewTimeoutError,
    review_data,
)
from alerts.console.settings import ConsoleSettings, Role

__all__ = ["CONSOLE", "Console", "make_console_app"]

log = structlog.get_logger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'")


class Console:
    """The handlers and what they share. Build the app with :func:`make_console_app`."""

    def __init__(self, settings: ConsoleSettings, feed: AlertFeed, *,
                 desk: ReviewDesk | None, store: AuditReader | None,
                 live: LiveFeed | None = None, exporter: Exporter | None = None,
                 on_event: EventHook | None = None) -> None:
        if not settings.tokens:
            raise ValueError("console.tokens is empty: configure at least one token "
                             "(ROOMWARDEN_CONSOLE__TOKENS); the console is never open")
        self.settings = settings
        self.feed = feed
        self.desk = desk
        self.store = store
        self.live = live
        self.exporter = exporter
        self._on_event = on_event
        self.auth = ConsoleAuth(TokenBook(settings.tokens),
                                SessionStore(settings.session_ttl_s, settings.max_sessions),
                                cookie_secure=settings.cookie_secure, on_event=on_event)
        self.reviewer_roles: tuple[Role, ...] = (
            ("operator", "auditor") if settings.auditors_may_review else ("operator",))

    # --- pages ------------------------------------------------------------------------------

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        if self.auth.has_session(request):
            raise web.HTTPFound("/console")
        return web.FileResponse(STATIC_DIR / "login.html")

    async def console_page(self, request: web.Request) -> web.StreamResponse:
        if self.auth.principal(request) is None:
            raise web.HTTPFound("/")
        return web.FileResponse(STATIC_DIR / "console.html")

    async def alert_link(self, request: web.Request) -> web.StreamResponse:
        """``/alerts/<id>``, the link in host-warning webhooks: the console with that alert
        open (after login: the fragment survives the redirects)."""
        alert_id = request.match_info["alert_id"]
        try:
            alert_id = str(uuid.UUID(alert_id))
        except ValueError:
            raise web.HTTPNotFound(text=f"not an alert id: {alert_id[:64]!r}") from None
        raise web.HTTPFound(f"/console#alert={alert_id}")

    async def me(self, request: web.Request) -> web.Response:
        principal = self.auth.require(request)
        return web.json_response({
            "name": principal.name, "role": principal.role,
            "may_review": principal.role in self.reviewer_roles,
            "may_export": principal.role == "auditor",
        })

    # --- live -------------------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        principal = self.auth.require(request)
        last_event_id = (request.headers.get("Last-Event-ID")
                         or request.query.get("last_event_id"))
        try:
            client, backlog = self.feed.subscribe(last_event_id, label=principal.name)
        except FeedFullError as exc:
            raise web.HTTPServiceUnavailable(text=str(exc)) from exc
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        write_timeout = 2 * self.settings.keepalive_s
        try:
            await response.prepare(request)
            first = b"retry: 2000\n\n" + b"".join(sse_frame(e, self.feed.epoch) for e in backlog)
            await asyncio.wait_for(response.write(first), write_timeout)
            while True:
                try:
                    event = await asyncio.wait_for(client.queue.get(), self.settings.keepalive_s)
                except TimeoutError:
                    if not self.auth.session_alive(request):
                        break  # logged out or expired: the stream ends with the session
                    await asyncio.wait_for(response.write(b": keepalive\n\n"), write_timeout)
                    continue
                if event is None:  # dropped (too slow) or shutting down
                    break
                if not self.auth.session_alive(request):
                    break
                await asyncio.wait_for(response.write(sse_frame(event, self.feed.epoch)),
                                       write_timeout)
        except (ConnectionError, TimeoutError):
            pass  # the browser went away or stopped reading; it reconnects if it is still there
        finally:
            self.feed.unsubscribe(client)
        return response

    async def recent(self, request: web.Request) -> web.Response:
        self.auth.require(request)
        q = request.query
        try:
            limit = min(max(int(q.get("limit", "100")), 1), self.settings.recent_alerts)
        except ValueError as exc:
            raise _bad_request(f"limit must be an integer, not {q.get('limit')!r}") from exc
        alerts = self.feed.recent(limit=limit, severity=q.get("severity") or None,
                                  category=q.get("category") or None, room=q.get("room") or None)
        return web.json_response({"alerts": alerts})

    async def risk(self, request: web.Request) -> web.Response:
        self.auth.require(request)
        return web.json_response({"rooms": self.feed.risk.snapshot(),
                                  "half_life_s": self.settings.risk_half_life_s})

    # --- one alert --------------------------------------------------------------------------

    async def detail(self, request: web.Request) -> web.Response:
        self.auth.require(request)
        alert_id = request.match_info["alert_id"]
        alert = await self._alert(alert_id)
        context = await asyncio.to_thread(alert_context, self.store, alert,
                                          self.settings.transcript_window_s)
        clip = await self._clip_sha256(alert)
        classifier = alert.get("classifier") or {}
        return web.json_response({
            "alert": alert,
            "review": self.feed.review_of(alert_id),
            "speaker": {"speaker_id": alert["speaker_id"],
                        "speaker_name": alert.get("speaker_name", "")},
            "rule": {"rule_id": alert["rule_id"], "category": alert["category"],
                     "severity": alert["severity"], "suggestion": alert["suggestion"],
                     "policy": alert.get("policy")},
            "score": {"match_kind": alert["match"].get("kind", "exact"),
                      "score": alert.get("score"),
                      "confidence": alert.get("confidence"),
                      "confidence_class": alert.get("confidence_class"),
                      "classifier_probability": classifier.get("probability"),
                      "classifier_model_id": classifier.get("model_id")},
            "context": context,
            "window_s": self.settings.transcript_window_s,
            "clip": f"/api/alerts/{alert_id}/clip" if clip else None,
        })

    async def clip(self, request: web.Request) -> web.Response:
        self.auth.require(request)
        alert = await self._alert(request.match_info["alert_id"])
        sha256 = await self._clip_sha256(alert)
        wav = await asyncio.to_thread(self.store.blob, sha256) if (sha256 and self.store) else None
        if wav is None:
            raise _json_error(web.HTTPNotFound, "no evidence audio for this alert")
        return web.Response(body=wav, content_type="audio/wav",
                            headers={"Content-Disposition":
                                     f'inline; filename="{alert["alert_id"]}.wav"'})

    async def review(self, request: web.Request) -> web.Response:
        principal = self.auth.require(request, *self.reviewer_roles)
        if self.desk is None:
            raise _json_error(web.HTTPServiceUnavailable, "reviews are not enabled (no Kafka)")
        if request.content_type != "application/json":
            raise _json_error(web.HTTPUnsupportedMediaType, "send the review as JSON")
        try:
            body = await request.json()
        except ValueError as exc:
            raise _bad_request(f"the body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise _bad_request("the body must be a JSON object")
        action, note = body.get("action"), body.get("note", "")
        request_id = body.get("request_id", "")
        if action not in REVIEW_ACTIONS:
            raise _bad_request(f"action must be one of {', '.join(REVIEW_ACTIONS)}")
        if not isinstance(note, str):
            raise _bad_request("note must be a string")
        if not isinstance(request_id, str) or (request_id and not _REQUEST_ID.match(request_id)):
            raise _bad_request("request_id must be 1-64 characters of A-Z a-z 0-9 _ -")
        alert = await self._alert(request.match_info["alert_id"])
        try:
            done, new = await self.desk.submit(
                alert_id=alert["alert_id"], room_id=alert["room_id"], action=action,
                reviewer=principal.name, role=principal.role, note=note, request_id=request_id)
        except ReviewTimeoutError as exc:
            self._emit("review", action=action, outcome="timeout")
            raise _json_error(web.HTTPServiceUnavailable, str(exc)) from exc
        except ValueError as exc:
            raise _bad_request(str(exc)) from exc
        except Exception as exc:
            log.error("console_review_failed", alert_id=alert["alert_id"], error=repr(exc))
            self._emit("review", action=action, outcome="failed")
            raise _json_error(web.HTTPBadGateway, f"Kafka refused the review: {exc}") from exc
        data = review_data(done)
        self.feed.add_review(data)  # at once: the Kafka tail brings it again (deduplicated)
        log.info("console_review", alert_id=data["alert_id"], room_id=data["room_id"],
                 action=action, reviewer=principal.name, role=principal.role, new=new)
        self._emit("review", action=action, outcome="published" if new else "duplicate")
        return web.json_response({"review": data, "published": new})

    async def _alert(self, alert_id: str) -> dict[str, Any]:
        view = self.feed.alert(alert_id)
        if view is not None:
            return dict(view["alert"])
        if self.store is not None:
            entry = await asyncio.to_thread(self.store.find, "alert", alert_id)
            if entry is not None:
                return dict(entry.data)
        raise _json_error(web.HTTPNotFound, f"no alert {alert_id}")

    async def _clip_sha256(self, alert: Mapping[str, Any]) -> str | None:
        if self.store is None:
            return None
        return await asyncio.to_thread(evidence_of, self.store, alert)

    async def export(self, request: web.Request) -> web.StreamResponse:
        return await export_handler(self, request)

    # --- health -----------------------------------------------------------------------------

    async def health(self, _: web.Request) -> web.Response:
        kafka = self.live.connected if self.live is not None else None
        ok = kafka is not False
        return web.json_response({"ok": ok, "kafka_connected": kafka,
                                  "clients": self.feed.clients,
                                  "alerts": self.feed.alert_count},
                                 status=200 if ok else 503)

    def _emit(self, name: str, **fields: Any) -> None:
        emit_event(self._on_event, name, fields)


CONSOLE = web.AppKey("console", Console)


def make_console_app(console: Console) -> web.Application:
    """The aiohttp application serving ``console``."""
    app = web.Application(middlewares=[_same_origin_writes])
    app[CONSOLE] = console
    r = app.router
    r.add_get("/", console.login_page)
    r.add_get("/console", console.console_page)
    r.add_get("/alerts/{alert_id}", console.alert_link)
    r.add_static("/static", STATIC_DIR, show_index=False, follow_symlinks=False)
    r.add_post("/api/login", console.auth.login)
    r.add_post("/api/logout", console.auth.logout)
    r.add_get("/api/me", console.me)
    r.add_get("/api/stream", console.stream)
    r.add_get("/api/alerts", console.recent)
    r.add_get("/api/alerts/{alert_id}", console.detail)
    r.add_get("/api/alerts/{alert_id}/clip", console.clip)
    r.add_post("/api/alerts/{alert_id}/review", console.review)
    r.add_get("/api/rooms/risk", console.risk)
    r.add_get("/api/export", console.export)
    r.add_get("/healthz", console.health)
    app.on_response_prepare.append(_security_headers)

    async def end_streams(_: web.Application) -> None:
        console.feed.close()

    app.on_shutdown.append(end_streams)
    return app


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    h = response.headers
    h.setdefault("Content-Security-Policy", _CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "no-referrer")
    h.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/"):
        h.setdefault("Cache-Control", "no-store")


@web.middleware
async def _same_origin_writes(request: web.Request,
                              handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                              ) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            log.warning("console_denied", status=403, reason="cross-origin write",
                        origin=origin, path=request.path, peer=request.remote)
            raise _json_error(web.HTTPForbidden, "cross-origin request refused")
    return await handler(request)


def _json_error(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    return kind(text=json.dumps({"error": message}), content_type="application/json")


def _bad_request(message: str) -> web.HTTPException:
    return _json_error(web.HTTPBadRequest, message)

