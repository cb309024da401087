"""Settings of the host-warning webhooks (``ROOMWARDEN_WEBHOOKS__*`` once wired into Settings).

Every field is documented where it is defined, as in ``roomwarden/settings.py``. Hosts are
configured per room, with ``"*"`` as the default for rooms not named::

    [webhooks]
    enabled = true
    console_base_url = "https://console.example.org"
    [webhooks.hosts."*"]
    url = "https://hooks.example.org/roomwarden"
    secret = "whsec_..."            # roomwarden webhooks secret (or any 24-64 random bytes)
    [webhooks.hosts."stage-1"]
    url = "https://stage-host.example.net/warn"
    secret = "whsec_..."
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from yarl import URL

from alerts.webhooks.signing import parse_secret

DEFAULT_SCHEDULE_S: tuple[float, ...] = (0, 5, 300, 1_800, 7_200, 18_000, 36_000, 50_400,
                                         72_000, 86_400)
"""Standard Webhooks' example schedule: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
20 h, 24 h (about 75.5 h from the first attempt to the last)."""


def check_endpoint_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host and no credentials, else ValueError."""
    try:
        parsed = URL(url)
    except ValueError as exc:
        raise ValueError(f"webhook url {url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"webhook url {url!r} must be an absolute http:// or https:// URL")
    if parsed.user is not None or parsed.password is not None:
        raise ValueError(f"webhook url {url!r} must not carry credentials (the signature "
                         f"authenticates the sender)")
    if parsed.fragment:
        raise ValueError(f"webhook url {url!r} must not have a #fragment")
    return url


class HostEndpoint(BaseModel):
    """Where one room's host receives warnings, and the secret they are signed with."""

    url: str
    """The host's webhook endpoint, ``https://...`` (``http://`` only with
    ``webhooks.allow_plain_http``). Requests are POSTs that never follow redirects."""
    secret: SecretStr
    """Signing secret in Standard Webhooks form, ``whsec_`` + base64 of 24-64 random bytes,
    unique to this endpoint (the host verifies with it). ``roomwarden webhooks secret`` makes
    one."""
    previous_secret: SecretStr | None = None
    """During a secret rotation: the old secret, still signed with (the ``webhook-signature``
    header then carries both signatures) until the host has switched; remove it afterwards."""

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_endpoint_url(url)

    @field_validator("secret", "previous_secret")
    @classmethod
    def _secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None:
            parse_secret(secret.get_secret_value())  # raises ValueError naming the problem
        return secret


class WebhookSettings(BaseModel):
    """Signed webhooks warning a room's host when the escalation ladder says ``host_warning``
    (``ROOMWARDEN_WEBHOOKS__*``). Standard Webhooks: ``webhook-id`` / ``webhook-timestamp`` /
    ``webhook-signature`` headers, a thin JSON body (alert id and a console link, never the
    words said), retries from a persistent outbox."""

    enabled: bool = False
    """Send host warnings. Off: warnings are not even queued."""
    outbox_path: Path = Path("roomwarden-webhooks.sqlite3")
    """SQLite file holding pending deliveries, delivered ids and disabled endpoints. It survives
    restarts: a warning accepted before a crash is still delivered after it, with the same
    ``webhook-id``. One dispatcher per file."""
    hosts: dict[str, HostEndpoint] = Field(default_factory=dict)
    """Room id → the host's endpoint; the key ``"*"`` is the default for every other room.
    A room with neither gets no webhook (counted as ``no_endpoint``)."""
    console_base_url: str = "http://127.0.0.1:8090"
    """Base URL of the moderation console; each warning links to
    ``<console_base_url>/alerts/<alert id>``, where the host (with a console login) sees the
    details the thin payload leaves out."""
    timeout_s: float = Field(default=15.0, gt=0, le=120)
    """Limit on one delivery attempt (connect, send, response headers). Standard Webhooks
    suggests 15-30 s; a timeout counts as a failed attempt and is retried."""
    schedule_s: list[float] = Field(default_factory=lambda: list(DEFAULT_SCHEDULE_S))
    """Wait before each attempt, in seconds, counted from the previous attempt's failure (the
    first entry is for the first attempt, normally 0). Beyond the list the last wait repeats."""
    jitter: float = Field(default=1.0, ge=0.0, le=1.0)
    """Random share of each wait: the wait is drawn uniformly from ``[step*(1-jitter), step]``.
    1.0 = full jitter (``[0, step]``), so hosts that failed together do not retry together;
    0 = the schedule exactly."""
    max_attempts: int = Field(default=10, ge=1)
    """Attempts before a delivery is given up as ``failed`` (10 = the whole default
    schedule)."""
    allow_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    """Networks (CIDR, e.g. ``["10.20.0.0/16"]``) that host endpoints may resolve into although
    they are internal. Empty (default): loopback, private, link-local, CGNAT, multicast and
    reserved addresses are refused before any packet is sent (SSRF defence); tests allow
    ``127.0.0.1/32``."""
    allow_plain_http: bool = False
    """Accept ``http://`` endpoints. Off: only ``https://``, so the payload and signature are
    not readable on the way. Turn on only for endpoints on a network you trust (and tests)."""
    max_in_flight: int = Field(default=8, ge=1)
    """Deliveries attempted at once (across all hosts)."""
    keep_finished_s: float = Field(default=7 * 86_400.0, ge=0)
    """How long delivered / failed / dropped ids stay in the outbox. A warning submitted again
    within this time (a replayed escalation) is recognised by id and not sent twice."""

    @field_validator("schedule_s")
    @classmethod
    def _schedule(cls, schedule: list[float]) -> list[float]:
        if not schedule:
            raise ValueError("webhooks.schedule_s needs at least one wait (e.g. [0])")
        if any(step < 0 for step in schedule):
            raise ValueError(f"webhooks.schedule_s has a negative wait: {schedule}")
        return schedule

    @field_validator("console_base_url")
    @classmethod
    def _console(cls, url: str) -> str:
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"webhooks.console_base_url {url!r} must be an absolute "
                             f"http(s) URL")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _hosts(self) -> Self:
        if self.enabled and not self.hosts:
            raise ValueError("webhooks.enabled needs at least one entry in webhooks.hosts "
                             "(a room id, or \"*\" for every room)")
        if not self.allow_plain_http:
            plain = sorted(room for room, host in self.hosts.items()
                           if URL(host.url).scheme != "https")
            if plain:
                raise ValueError(f"webhooks.hosts {plain} use http://; use https:// or set "
                                 f"webhooks.allow_plain_http")
        return self

    def endpoint_for(self, room_id: str) -> HostEndpoint | None:
        """The room's own endpoint, else the ``"*"`` default, else None."""
        return self.hosts.get(room_id) or self.hosts.get("*")
