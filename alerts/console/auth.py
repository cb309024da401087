"""Who may use the console: token login, in-memory sessions, roles.

- **Tokens** come from settings (:class:`~alerts.console.settings.ConsoleToken`), each with a
  name and a role (``operator`` | ``auditor``). Only their sha256 is kept; a presented token is
  hashed and compared with *every* known digest by :func:`hmac.compare_digest` (no early exit),
  so neither the comparison nor the number of tokens tried leaks through timing.
- **Login** (``POST /api/login`` with ``{"token": ...}``) creates a random 256-bit session id,
  set as an ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` with ``cookie_secure``): page
  scripts cannot read it and other sites cannot make the browser send it. Sessions live in
  memory with an absolute expiry (``session_ttl_s``) and a cap (``max_sessions``).
- **API clients** (``curl`` for the export) may send ``Authorization: Bearer <token>`` instead.
- **Answers**: 401 for a missing, unknown or expired credential; 403 for a known one whose role
  may not do this. Every login, logout and denial is logged with the token's *name*, role,
  path and peer -- never the token or the session id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from alerts.console.hooks import EventHook, emit_event
from alerts.console.settings import ConsoleToken, Role

__all__ = [
    "COOKIE_NAME",
    "ConsoleAuth",
    "Principal",
    "SessionStore",
    "TokenBook",
]

COOKIE_NAME = "rw_console"
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Principal:
    """Someone logged in: the token's name and role."""

    name: str
    role: Role


class TokenBook:
    """The configured tokens, by sha256 digest."""

    def __init__(self, tokens: Sequence[ConsoleToken]) -> None:
        self._entries = [(t.digest(), Principal(t.name, t.role)) for t in tokens]

    def __len__(self) -> int:
        return len(self._entries)

    def identify(self, token: str) -> Principal | None:
        """The principal of ``token``, or None. Constant work whatever matches (or not)."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found: Principal | None = None
        for known, principal in self._entries:
            if hmac.compare_digest(digest, known):
                found = principal
        return found


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    expires_at: float


class SessionStore:
    """Login sessions in memory: random ids, absolute expiry, bounded count (oldest dropped)."""

    def __init__(self, ttl_s: float, max_sessions: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, principal: Principal) -> tuple[str, Session]:
        self._expire()
        session_id = secrets.token_urlsafe(32)
        session = Session(principal, self._clock() + self._ttl_s)
        self._sessions[session_id] = session
        while len(self._sessions) > self._max:
            self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[session_id]
            return None
        return session

    def revoke(self, session_id: str) -> Session | None:
        return self._sessions.pop(session_id, None)

    def _expire(self) -> None:
        now = self._clock()
        # Insertion order is expiry order (one TTL for all): stop at the first live one.
        while self._sessions:
            first = next(iter(self._sessions.values()))
            if first.expires_at > now:
                return
            self._sessions.popitem(last=False)


class ConsoleAuth:
    """Login, logout and role checks for the console's aiohttp handlers.

    Args:
        tokens: the configured tokens.
        sessions: the session store.
        cookie_secure: mark the session cookie ``Secure``.
        on_event: optional hook ``(name, fields)`` for metrics: ``login`` (``outcome`` ok /
            denied) and ``denied`` (``status`` 401 / 403).
    """

    def __init__(self, tokens: TokenBook, sessions: SessionStore, *, cookie_secure: bool = False,
                 on_event: EventHook | None = None) -> None:
        self.tokens = tokens
        self.sessions = sessions
        self._cookie_secure = cookie_secure
        self._on_event = on_event

    # --- who is asking ----------------------------------------------------------------------

    def principal(self, request: web.Request) -> Principal | None:
        """The session cookie's principal, else the Bearer token's, else None."""
        session_id = request.cookies.get(COOKIE_NAME)
        if session_id:
            session = self.sessions.get(session_id)
            if session is not None:
                return session.principal
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self.tokens.identify(token.strip())
        return None

    def require(self, request: web.Request, *roles: Role) -> Principal:
        """The caller, if logged in with one of ``roles`` (any role when none given).

        Raises:
            web.HTTPUnauthorized: no valid session or token (JSON body, ``WWW-Authenticate``).
            web.HTTPForbidden: a valid one whose role is not allowed here.
        """
        principal = self.principal(request)
        if principal is None:
            reason = self._why_not(request)
            self._deny(request, 401, reason)
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "login required", "reason": reason}),
                content_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="roomwarden-console"'})
        if roles and principal.role not in roles:
            self._deny(request, 403, f"role {principal.role} may not do this", principal)
            raise web.HTTPForbidden(
                text=json.dumps({"error": f"the {principal.role} role may not do this",
                                 "needs": list(roles)}),
                content_type="application/json")
        return principal

    # --- handlers ---------------------------------------------------------------------------

    async def login(self, request: web.Request) -> web.Response:
        """``POST /api/login``: ``{"token": "..."}`` (JSON or form) -> session cookie."""
        token = await _presented_token(request)
        principal = self.tokens.identify(token) if token else None
        if principal is None:
            reason = "no token" if not token else "unknown token"
            log.warning("console_login_denied", reason=reason, peer=request.remote)
            self._emit("login", outcome="denied")
            return web.json_response({"error": "wrong token"}, status=401)
        session_id, session = self.sessions.create(principal)
        log.info("console_login", name=principal.name, role=principal.role, peer=request.remote,
                 expires_at=session.expires_at)
        self._emit("login", outcome="ok")
        response = web.json_response({"name": principal.name, "role": principal.role,
                                       "expires_at": session.expires_at})
        response.set_cookie(COOKIE_NAME, session_id, httponly=True, samesite="Strict",
                            secure=self._cookie_secure, path="/",
                            max_age=max(int(session.expires_at - time.time()), 1))
        return response

    async def logout(self, request: web.Request) -> web.Response:
        """``POST /api/logout``: ends the session (idempotent)."""
        session_id = request.cookies.get(COOKIE_NAME)
        session = self.sessions.revoke(session_id) if session_id else None
        if session is not None:
            log.info("console_logout", name=session.principal.name, role=session.principal.role,
                     peer=request.remote)
        response = web.json_response({"ok": True})
        response.del_cookie(COOKIE_NAME, path="/")
        return response

    def has_session(self, request: web.Request) -> bool:
        """Whether the request carries a valid session cookie (the login page then forwards)."""
        session_id = request.cookies.get(COOKIE_NAME)
        return session_id is not None and self.sessions.get(session_id) is not None

    def session_alive(self, request: web.Request) -> bool:
        """Whether the request's session (if it came with one) is still valid: long-lived
        streams end when their session expires or is logged out."""
        session_id = request.cookies.get(COOKIE_NAME)
        return session_id is None or self.sessions.get(session_id) is not None

    # --- internals --------------------------------------------------------------------------

    def _why_not(self, request: web.Request) -> str:
        if request.cookies.get(COOKIE_NAME):
            return "session unknown or expired"
        if request.headers.get("Authorization"):
            return "wrong token"
        return "no session or token"

    def _deny(self, request: web.Request, status: int, reason: str,
              principal: Principal | None = None) -> None:
        log.warning("console_denied", status=status, reason=reason, method=request.method,
                    path=request.path, peer=request.remote,
                    name=principal.name if principal else None,
                    role=principal.role if principal else None)
        self._emit("denied", status=status)

    def _emit(self, name: str, **fields: Any) -> None:
        emit_event(self._on_event, name, fields)


async def _presented_token(request: web.Request) -> str:
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            return ""
        token = body.get("token") if isinstance(body, dict) else None
    else:
        form = await request.post()
        token = form.get("token")
    return token.strip() if isinstance(token, str) else ""
