"""Hot reload of the rule pack: a changed file is applied atomically, a broken one never is.

:class:`PolicyReloader` polls the pack file every ``interval_s`` (and at once on ``SIGHUP``).
When its ``(mtime, size)`` changed it reads the bytes and hashes them; when the sha256 differs
from the active pack's, it builds a new engine *off the event loop* (parsing a pack and building
its automata takes milliseconds to seconds) and, only if that succeeded, hands it to ``apply``
(``Pipeline.set_policy``: one attribute assignment on the loop, so a transcript is judged by
either the old pack or the new one, never a mix). A pack that fails to build -- a
:class:`~policy.rules.RulePackError` naming file:line, or anything else -- is logged and counted,
and the old engine stays in force; the same broken bytes are not retried until the file changes
again.

Metrics (on the registry given): ``roomwarden_policy_reloads_total{outcome="applied"|"failed"}``
and ``roomwarden_policy_info{name,version,sha256} 1`` for the active pack.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import structlog
from prometheus_client import CollectorRegistry, Counter, Info

from policy.engine import PolicyEngine
from policy.rules import RulePackError

__all__ = ["PolicyReloader", "ReloadOutcome"]

log = structlog.get_logger(__name__)

ReloadOutcome = Literal["applied", "failed", "unchanged"]


class PolicyReloader:
    """Watches one rule pack file and swaps in a new engine when it changes.

    Args:
        path: the pack file.
        apply: installs a new engine (``Pipeline.set_policy``); called on the event loop.
        build: builds an engine from the file (``RulePack.load`` + ``PolicyEngine``); called in
            a worker thread; raises on a bad pack.
        interval_s: seconds between polls; ``0`` polls never (SIGHUP and :meth:`check` still
            reload).
        active: the engine currently in force (its pack's sha256 is the baseline).
        registry: where the metrics go (``None``: not exported).
        sighup: also reload on ``SIGHUP`` (only where the loop can take signal handlers: the
            main thread on Unix).
    """

    def __init__(self, path: str | Path, apply: Callable[[PolicyEngine], None],
                 build: Callable[[Path], PolicyEngine], interval_s: float = 2.0, *,
                 active: PolicyEngine, registry: CollectorRegistry | None = None,
                 sighup: bool = True) -> None:
        if interval_s < 0:
            raise ValueError(f"interval_s must be >= 0: {interval_s}")
        self.path = Path(path)
        self._apply = apply
        self._build = build
        self._interval_s = interval_s
        self._sighup = sighup
        self.active = active
        self._stat: tuple[int, int] | None = None  # first check hashes the file
        self._seen_sha256 = active.pack.sha256  # last bytes tried, good or bad
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._reloads = Counter("roomwarden_policy_reloads", "Rule pack reloads by outcome.",
                                ["outcome"], registry=registry)
        self._info = Info("roomwarden_policy", "The rule pack in force.", registry=registry)
        self._publish_info()

    @property
    def active_sha256(self) -> str:
        return self.active.pack.sha256

    async def start(self) -> None:
        """Start polling (and listening for SIGHUP)."""
        if self._sighup:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request)
        self._task = asyncio.create_task(self._run(), name="policy-reload")

    async def stop(self) -> None:
        if self._sighup:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def request(self) -> None:
        """Check the file now (the SIGHUP handler), even if its mtime and size look unchanged."""
        self._stat = None
        self._wake.set()

    async def check(self) -> ReloadOutcome:
        """One poll: reload if the file's content changed. Never raises for a bad pack."""
        async with self._lock:
            stat = self._stat_now()
            if stat is None:
                if self._stat is not None:
                    log.error("policy_reload_failed", path=str(self.path),
                              error="rule pack file missing; keeping the active pack",
                              active_sha256=self.active_sha256)
                    self._reloads.labels(outcome="failed").inc()
                self._stat = None
                return "failed"
            if stat == self._stat:
                return "unchanged"
            self._stat = stat
            try:
                data = await asyncio.to_thread(self.path.read_bytes)
            except OSError as exc:
                return self._failed(f"cannot read rule pack: {exc}")
            sha256 = hashlib.sha256(data).hexdigest()
            if sha256 == self._seen_sha256:
                return "unchanged"  # touched, or the same bytes that already failed
            self._seen_sha256 = sha256
            try:
                engine = await asyncio.to_thread(self._build, self.path)
            except RulePackError as exc:
                return self._failed(str(exc))
            except Exception as exc:  # noqa: BLE001 -- any failure keeps the old pack
                log.exception("policy_reload_error", path=str(self.path))
                return self._failed(repr(exc))
            previous = self.active_sha256
            self._apply(engine)
            self.active = engine
            self._seen_sha256 = engine.pack.sha256
            self._reloads.labels(outcome="applied").inc()
            self._publish_info()
            log.info("policy_reloaded", path=str(self.path), pack=engine.pack.name,
                     version=engine.pack.version, sha256=engine.pack.sha256,
                     previous_sha256=previous, rules=len(engine.pack.rules))
            return "applied"

    def _failed(self, error: str) -> ReloadOutcome:
        self._reloads.labels(outcome="failed").inc()
        log.error("policy_reload_failed", path=str(self.path), error=error,
                  active_sha256=self.active_sha256)
        return "failed"

    def _publish_info(self) -> None:
        pack = self.active.pack
        self._info.info({"name": pack.name, "version": pack.version, "sha256": pack.sha256})

    def _stat_now(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    async def _run(self) -> None:
        timeout = self._interval_s if self._interval_s > 0 else None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            await self.check()
