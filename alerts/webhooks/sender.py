"""One delivery attempt over HTTP: POST the signed body, report what happened.

aiohttp with the SSRF guard as its resolver (:mod:`alerts.webhooks.egress`), no DNS cache (each
connection's addresses are the ones just checked), no proxy from the environment, redirects
never followed, one overall timeout per attempt, and the response body never read (only the
status matters; a host cannot make us download anything).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from alerts.webhooks.egress import EgressGuard, EgressRefused, refused_cause

USER_AGENT = "RoomWarden-Webhooks/1"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt came to.

    Attributes:
        status: the HTTP status, or None when no response arrived (timeout, refused connection,
            DNS failure, or an address the guard refused).
        error: what went wrong when there is no status ("" otherwise).
        refused: the guard refused the endpoint's address (never retried: it is configuration).
        retry_after_s: the response's ``Retry-After``, in seconds, when it had one.
    """

    status: int | None
    error: str = ""
    refused: bool = False
    retry_after_s: float | None = None


class Sender(Protocol):
    """Sends one attempt (the dispatcher's seam; tests pass a fake)."""

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> AttemptResult: ...

    async def close(self) -> None: ...


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now`` (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class HttpSender:
    """The real :class:`Sender`: aiohttp behind an :class:`EgressGuard`.

    Args:
        guard: the SSRF guard (its resolver is the connector's).
        timeout_s: limit on one attempt, from connecting to the response headers.
    """

    def __init__(self, guard: EgressGuard, *, timeout_s: float) -> None:
        self.guard = guard
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=self.guard.resolver(),
                                             use_dns_cache=False, limit=32)
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers={"user-agent": USER_AGENT})
        return self._session

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> AttemptResult:
        try:
            self.guard.check_url(url)  # IP literals skip the resolver: check them here
            async with self._client().post(url, data=body, headers=dict(headers),
                                           allow_redirects=False) as resp:
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), time.time())
                return AttemptResult(status=resp.status, retry_after_s=retry_after)
        except EgressRefused as exc:
            return AttemptResult(status=None, error=str(exc), refused=True)
        except TimeoutError:
            return AttemptResult(status=None, error=f"no response within {self.timeout_s:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            refused = refused_cause(exc)
            if refused is not None:
                return AttemptResult(status=None, error=str(refused), refused=True)
            return AttemptResult(status=None, error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            await asyncio.sleep(0)  # let the connector's transports finish closing
