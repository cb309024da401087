"""The webhook dispatcher: accepts host warnings without blocking, delivers them from the outbox.

:meth:`WebhookDispatcher.submit` is synchronous and quick (one SQLite insert, no network): the
warning's body is built, stored under its ``webhook-id`` and the delivery loop is woken. The
loop sends whatever is due, at most ``max_in_flight`` at once, each attempt signed afresh with
the host's secret(s) (same id and body, the attempt's own timestamp). Outcomes:

- ``2xx``: delivered, done;
- ``410 Gone``: the host wants no more; the endpoint URL is disabled (persisted), this and every
  later warning for it dropped (counted);
- an internal address (:mod:`alerts.webhooks.egress`): refused, not retried (configuration);
- anything else (3xx -- never followed --, 4xx, 5xx, timeout, connection error): retried after
  the next wait of the schedule, with jitter, or after ``Retry-After`` if the host asks for
  longer; given up as ``failed`` after ``max_attempts``.

Attempts are written to the outbox before they are sent, so a dispatcher killed at any point
resumes after restart with the same ids and bodies: at least once per id, and the receiver
dedupes on ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import structlog
from yarl import URL

from alerts.webhooks.egress import EgressGuard
from alerts.webhooks.outbox import Delivery, Outbox
from alerts.webhooks.payload import HostWarning, thin_body
from alerts.webhooks.sender import AttemptResult, HttpSender, Sender
from alerts.webhooks.settings import HostEndpoint, WebhookSettings
from alerts.webhooks.signing import parse_secret, signed_headers

log = structlog.get_logger(__name__)

SUBMIT_OUTCOMES = ("queued", "duplicate", "no_endpoint", "dropped_disabled", "invalid",
                   "not_stored")
"""What :meth:`WebhookDispatcher.submit` can say about a warning."""
DELIVERY_OUTCOMES = ("delivered", "retried", "failed", "disabled", "refused_address")
"""What an attempt can come to (``retried``: failed, another attempt is scheduled)."""
MAX_IDLE_S = 30.0
PRUNE_EVERY_S = 3_600.0


class DispatchObserver(Protocol):
    """Told what happens (the composition root turns it into metrics)."""

    def submitted(self, outcome: str) -> None: ...

    def attempted(self, outcome: str) -> None: ...

    def delivered(self, latency_s: float) -> None: ...


class _NoObserver:
    def submitted(self, outcome: str) -> None:
        return None

    def attempted(self, outcome: str) -> None:
        return None

    def delivered(self, latency_s: float) -> None:
        return None


def backoff_wait(attempt: int, schedule_s: Sequence[float], jitter: float, u: float) -> float:
    """Wait before attempt number ``attempt`` (1 = first): the schedule's step (its last step
    past its end), less a random share: ``step * (1 - jitter * u)`` with ``u`` in [0, 1)."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    step = schedule_s[min(attempt - 1, len(schedule_s) - 1)]
    return step * (1.0 - jitter * u)


class WebhookDispatcher:
    """Delivers :class:`HostWarning` webhooks (see the module doc).

    Args:
        settings: the ``webhooks`` settings (hosts, schedule, timeouts, allowed networks).
        sender: sends one attempt; default :class:`HttpSender` behind an :class:`EgressGuard`
            of ``settings.allow_networks``.
        outbox: the outbox; default the SQLite file ``settings.outbox_path`` (opened by
            :meth:`start`, closed by :meth:`close`).
        observer: told every outcome and delivery latency.
        clock: wall clock, Unix seconds (outbox times survive restarts, so not monotonic).
        sleep: how the loop waits (tests pass one that advances a fake clock).
        rand: uniform [0, 1) source of the jitter.
        max_idle_s: longest single wait of the loop, so wall-clock jumps are noticed.
    """

    def __init__(self, settings: WebhookSettings, *, sender: Sender | None = None,
                 outbox: Outbox | None = None, observer: DispatchObserver | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 rand: Callable[[], float] = random.random,
                 max_idle_s: float = MAX_IDLE_S) -> None:
        self.settings = settings
        self._sender = sender
        self._outbox = outbox
        self._owns_outbox = outbox is None
        self._observer = observer or _NoObserver()
        self._clock, self._sleep, self._rand = clock, sleep, rand
        self._max_idle_s = max_idle_s
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._last_prune = float("-inf")

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            raise RuntimeError("WebhookDispatcher.start() has not been called")
        return self._outbox

    async def start(self) -> None:
        """Open the outbox, resume what it holds, start the delivery loop."""
        if self._loop_task is not None:
            return
        if self._outbox is None:
            self._outbox = await asyncio.to_thread(Outbox, self.settings.outbox_path)
        if self._sender is None:
            guard = EgressGuard(self.settings.allow_networks)
            self._sender = HttpSender(guard, timeout_s=self.settings.timeout_s)
        counts = self.outbox.counts()
        log.info("webhooks_started", outbox=str(self.outbox.path), pending=counts["pending"],
                 disabled_endpoints=len(self.outbox.disabled_endpoints()),
                 hosts=len(self.settings.hosts))
        self._loop_task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop: let attempts under way finish (up to ``timeout_s``), keep the rest pending."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()), timeout=timeout_s)
            for task in list(self._inflight.values()):
                task.cancel()  # written down already: retried after restart
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        if self._sender is not None:
            await self._sender.close()
        if self._outbox is not None and self._owns_outbox:
            self._outbox.close()
            self._outbox = None

    def pending_count(self) -> int:
        """Deliveries waiting in the outbox (0 before :meth:`start`)."""
        return 0 if self._outbox is None else self._outbox.pending_count()

    def submit(self, warning: HostWarning) -> str:
        """Accept ``warning`` for delivery; never waits on the network. Returns the outcome:
        ``queued``, ``duplicate`` (this id was accepted before: nothing sent again),
        ``no_endpoint`` (no host configured for the room), ``dropped_disabled`` (its host
        answered 410 before), ``invalid`` (a body over the size limit; logged) or
        ``not_stored`` (the outbox could not be written; logged)."""
        endpoint = self.settings.endpoint_for(warning.room_id)
        if endpoint is None:
            log.info("webhook_no_endpoint", webhook_id=warning.webhook_id,
                     room_id=warning.room_id)
            return self._submitted("no_endpoint")
        try:
            if self.outbox.is_disabled(endpoint.url):
                log.info("webhook_dropped_disabled", webhook_id=warning.webhook_id,
                         room_id=warning.room_id, endpoint=loggable(endpoint.url))
                return self._submitted("dropped_disabled")
            body = thin_body(warning, self.settings.console_base_url)
            now = self._clock()
            wait = backoff_wait(1, self.settings.schedule_s, self.settings.jitter, self._rand())
            added = self.outbox.add(warning.webhook_id, warning.room_id, body, now=now,
                                    due_at=now + wait)
        except ValueError as exc:
            log.error("webhook_invalid", webhook_id=warning.webhook_id,
                      room_id=warning.room_id, error=str(exc))
            return self._submitted("invalid")
        except sqlite3.Error as exc:
            log.error("webhook_not_stored", webhook_id=warning.webhook_id,
                      room_id=warning.room_id, error=str(exc))
            return self._submitted("not_stored")
        if not added:
            return self._submitted("duplicate")
        log.info("webhook_queued", webhook_id=warning.webhook_id, room_id=warning.room_id,
                 alert_id=warning.alert_id)
        self._wake.set()
        return self._submitted("queued")

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except Exception:  # the outbox failing (disk full, locked): keep trying, loudly
                log.exception("webhook_loop_error")
                await self._sleep(1.0)

    async def _step(self) -> None:
        self._wake.clear()  # before looking: a submit from here on wakes the next wait
        now = self._clock()
        if now - self._last_prune >= PRUNE_EVERY_S:
            self._prune(now)
        room = self.settings.max_in_flight - len(self._inflight)
        if room > 0:
            for delivery in self.outbox.due(now, limit=room, exclude=self._inflight):
                self._launch(delivery)
        wait: float | None = None
        if len(self._inflight) < self.settings.max_in_flight:
            next_at = self.outbox.next_due_at(exclude=self._inflight)
            if next_at is not None:
                wait = min(self._max_idle_s, max(0.0, next_at - now))
        await self._wait(wait)

    async def _wait(self, wait_s: float | None) -> None:
        """Until woken (a submit, an attempt ending) or ``wait_s`` passed (None: no limit)."""
        if wait_s is not None and wait_s <= 0:
            await asyncio.sleep(0)
            return
        waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(self._wake.wait())}
        if wait_s is not None:
            waiters.add(asyncio.ensure_future(self._sleep(wait_s)))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _launch(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self._attempt(delivery))
        self._inflight[delivery.webhook_id] = task

        def done(finished: asyncio.Task[None]) -> None:
            self._inflight.pop(delivery.webhook_id, None)
            self._wake.set()
            if not finished.cancelled() and (exc := finished.exception()) is not None:
                # e.g. the outbox failing mid-attempt: the delivery stays pending and is
                # picked up again at its scheduled retry
                log.error("webhook_attempt_error", webhook_id=delivery.webhook_id,
                          error=f"{type(exc).__name__}: {exc}")

        task.add_done_callback(done)

    async def _attempt(self, delivery: Delivery) -> None:
        wid, outbox, s = delivery.webhook_id, self.outbox, self.settings
        endpoint = s.endpoint_for(delivery.room_id)
        now = self._clock()
        if endpoint is None:  # the room's host was removed from the settings since
            outbox.finish(wid, "failed", now=now, error="no host endpoint for the room")
            log.warning("webhook_failed", webhook_id=wid, room_id=delivery.room_id,
                        error="no host endpoint for the room")
            self._observer.attempted("failed")
            return
        if outbox.is_disabled(endpoint.url):
            outbox.finish(wid, "disabled", now=now, error="endpoint disabled (410 Gone)")
            log.info("webhook_dropped_disabled", webhook_id=wid, room_id=delivery.room_id,
                     endpoint=loggable(endpoint.url))
            self._observer.attempted("disabled")
            return
        attempt = delivery.attempts + 1
        retry_at = now + self._wait_before(attempt + 1)
        outbox.begin_attempt(wid, url=endpoint.url, retry_at=retry_at)
        try:
            headers = signed_headers(_keys(endpoint), wid, int(now), delivery.body)
            result = await self._send(endpoint.url, headers, delivery.body)
        except Exception as exc:  # a bug, not the host: logged; the retry is already scheduled
            log.exception("webhook_attempt_crashed", webhook_id=wid)
            result = AttemptResult(status=None, error=f"{type(exc).__name__}: {exc}")
        self._settle(delivery, endpoint, attempt, result)

    async def _send(self, url: str, headers: dict[str, str], body: bytes) -> AttemptResult:
        assert self._sender is not None
        return await self._sender.send(url, headers, body)

    def _settle(self, delivery: Delivery, endpoint: HostEndpoint, attempt: int,
                result: AttemptResult) -> None:
        wid, outbox, s = delivery.webhook_id, self.outbox, self.settings
        now = self._clock()
        fields = {"webhook_id": wid, "room_id": delivery.room_id, "attempt": attempt,
                  "status": result.status, "endpoint": loggable(endpoint.url)}
        if result.refused:
            outbox.finish(wid, "refused", now=now, error=result.error)
            log.error("webhook_refused_address", error=result.error, **fields)
            self._observer.attempted("refused_address")
        elif result.status is not None and 200 <= result.status < 300:
            outbox.finish(wid, "delivered", now=now, status=result.status)
            log.info("webhook_delivered", **fields)
            self._observer.attempted("delivered")
            self._observer.delivered(max(0.0, now - delivery.created_at))
        elif result.status == 410:
            outbox.disable_endpoint(endpoint.url, now=now, webhook_id=wid, status=410)
            outbox.finish(wid, "disabled", now=now, status=410)
            log.warning("webhook_endpoint_disabled", **fields)
            self._observer.attempted("disabled")
        elif attempt >= s.max_attempts:
            outbox.finish(wid, "failed", now=now, status=result.status, error=result.error)
            log.error("webhook_failed", error=result.error, **fields)
            self._observer.attempted("failed")
        else:
            wait = self._wait_before(attempt + 1)
            if result.retry_after_s is not None:  # the host asked for longer: honour it
                wait = max(wait, min(result.retry_after_s, max(s.schedule_s)))
            outbox.reschedule(wid, at=now + wait, status=result.status, error=result.error)
            log.warning("webhook_retry", error=result.error, retry_in_s=round(wait, 3),
                        **fields)
            self._observer.attempted("retried")

    def _wait_before(self, attempt: int) -> float:
        s = self.settings
        return backoff_wait(attempt, s.schedule_s, s.jitter, self._rand())

    def _submitted(self, outcome: str) -> str:
        self._observer.submitted(outcome)
        return outcome

    def _prune(self, now: float) -> None:
        self._last_prune = now
        removed = self.outbox.prune(finished_before=now - self.settings.keep_finished_s)
        if removed:
            log.info("webhook_outbox_pruned", removed=removed)


def loggable(url: str) -> str:
    """The URL's origin only: hosts often put a token in the path or query of their URL."""
    return str(URL(url).origin())


def _keys(endpoint: HostEndpoint) -> list[bytes]:
    secrets = [endpoint.secret] + ([endpoint.previous_secret] if endpoint.previous_secret
                                   else [])
    return [parse_secret(secret.get_secret_value()) for secret in secrets]
