"""Settings of the operator console (``ROOMWARDEN_CONSOLE__*``, TOML section ``[console]``).

Example (env)::

    ROOMWARDEN_CONSOLE__TOKENS='[
      {"name": "ana", "role": "operator", "token_sha256": "9f86d0...15b0f00a08"},
      {"name": "audit-office", "role": "auditor", "token_sha256": "..."}]'

``token_sha256`` is ``printf %s "$TOKEN" | sha256sum``: the settings then never hold a usable
secret. A plain ``token`` is accepted too (handy in tests), and is hashed at start.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from policy.escalation import EscalationPolicy

__all__ = ["ConsoleSettings", "ConsoleToken", "Role"]

Role = Literal["operator", "auditor"]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MIN_TOKEN_CHARS = 16


class ConsoleToken(BaseModel):
    """One login of the console: who (``name``), what they may do (``role``), and the token."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\s/]+( [^\s/]+)*$")
    """Who logs in with this token; written into review events and logs (never the token)."""
    role: Role
    """``operator``: the live console and reviews (acknowledge, dismiss, escalate).
    ``auditor``: the live console (read) and the export; reviews only with
    ``console.auditors_may_review``."""
    token_sha256: str | None = None
    """Hex sha256 of the token (preferred: the settings hold no usable secret)."""
    token: SecretStr | None = None
    """The token itself (at least 16 characters); use ``token_sha256`` in production."""

    @model_validator(mode="after")
    def _one_secret(self) -> ConsoleToken:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError(f"console token {self.name!r}: give exactly one of token_sha256 "
                             "or token")
        if self.token_sha256 is not None and not _SHA256.match(self.token_sha256):
            raise ValueError(f"console token {self.name!r}: token_sha256 must be 64 lowercase "
                             "hex digits (sha256sum output)")
        if self.token is not None and len(self.token.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(f"console token {self.name!r}: the token must have at least "
                             f"{MIN_TOKEN_CHARS} characters (e.g. openssl rand -hex 16)")
        return self

    def digest(self) -> bytes:
        """The raw sha256 of the token."""
        if self.token_sha256 is not None:
            return bytes.fromhex(self.token_sha256)
        assert self.token is not None
        return hashlib.sha256(self.token.get_secret_value().encode("utf-8")).digest()


class ConsoleSettings(BaseModel):
    """The operator console: a web page with the live alert stream, reviews and the export
    (``roomwarden console``; Kafka topics come from ``kafka.*``, the audit store from
    ``audit.url``)."""

    host: str = "127.0.0.1"
    """Address to listen on. Loopback by default: put it behind a TLS reverse proxy (and set
    ``cookie_secure``) before exposing it."""
    port: int = Field(default=8090, ge=0, le=65535)
    """Port to listen on (0 = any free port)."""
    tokens: list[ConsoleToken] = []
    """Who may log in (env: a JSON list of ``{name, role, token_sha256 | token}``). Empty: the
    console refuses to start (it is never open)."""
    session_ttl_s: float = Field(default=8 * 3600, gt=0)
    """Lifetime of a login session (absolute, not sliding): after it the page asks for the
    token again. Sessions live in memory: a restart logs everyone out."""
    max_sessions: int = Field(default=1000, ge=1)
    """Sessions kept at once; the oldest is dropped beyond it (bounded memory)."""
    cookie_secure: bool = False
    """Mark the session cookie ``Secure`` (browsers then send it over HTTPS only). Turn on
    behind TLS."""
    backfill_s: float = Field(default=900.0, ge=0)
    """On start, alerts and escalations of the last this many seconds are read from the audit
    store, so a console (re)start still shows what just happened; Kafka is read from its end."""
    recent_alerts: int = Field(default=500, ge=1)
    """Alerts kept in memory for ``/api/alerts`` and for browsers (re)connecting."""
    client_queue: int = Field(default=256, ge=1)
    """Events queued per browser stream; a browser that falls this far behind is dropped (it
    reconnects and catches up from the recent alerts), so it never slows the others."""
    max_clients: int = Field(default=100, ge=1)
    """Concurrent browser streams; more are refused with 503."""
    keepalive_s: float = Field(default=15.0, gt=0)
    """Interval of SSE comment lines that keep idle streams (and proxies) open."""
    transcript_window_s: float = Field(default=60.0, gt=0)
    """How much of the room's conversation before an alert its detail view shows."""
    risk_half_life_s: float = Field(default=EscalationPolicy().half_life_s, gt=0)
    """Half-life with which the risk view decays the scores of the last escalation to now;
    keep it equal to the escalation ladder's (``policy.escalation``, 300 s)."""
    auditors_may_review: bool = False
    """Whether auditors may acknowledge/dismiss/escalate. Off: auditors check decisions, they
    do not make them (separation of duties); the review event records the role either way."""
    review_ack_timeout_s: float = Field(default=10.0, gt=0)
    """How long a review request waits for Kafka's ack before answering 503 (the review stays
    queued and resubmitting is safe: the review id is the same)."""

    @model_validator(mode="after")
    def _unique_names(self) -> ConsoleSettings:
        names = [t.name for t in self.tokens]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"console.tokens: duplicate name(s) {', '.join(dupes)}")
        digests = [t.digest() for t in self.tokens]
        if len(set(digests)) != len(digests):
            raise ValueError("console.tokens: two entries share one token")
        return self
