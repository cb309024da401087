"""Keep pulling a WHEP stream for as long as RoomWarden runs: restart it, report what was missed.

:class:`WhepPuller` runs one :class:`ingest.whep.WhepSource` at a time for one configured
stream. Whenever the source cannot be started (server unreachable, refusal, ICE failure) or its
stream ends (the remote end stopped, the connection failed), a new one is tried after an
exponential backoff with jitter (capped at ``backoff_max_s``; reset once a stream is up). Once
it hears the stream again it reports one :class:`StreamGap` (reason ``whep_unavailable``,
source ``whep``) from the end of the last stream -- or from the first failed attempt -- to
that moment; a gap still open at :meth:`close` ends then. Only :meth:`close` ends a puller:
a WHEP stream that ends while RoomWarden runs is never "done".
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence

import structlog
from aiortc import RTCIceServer

from ingest.frames import SpeechSegment, StreamGap
from ingest.stream_session import EventHook
from ingest.vad import VadParams
from ingest.whep import WhepError, WhepSource

log = structlog.get_logger(__name__)

GAP_REASON = "whep_unavailable"
SourceFactory = Callable[[], WhepSource]


class WhepPuller:
    """Pulls one WHEP endpoint into ``out`` until closed, restarting it (see the module doc).

    Args:
        url / room_id / speaker_id / token: the stream, as for :class:`WhepSource`.
        out: queue the segments are put on.
        vad: segmentation parameters.
        on_gap: called with each ``whep_unavailable`` gap once it is over.
        on_event: the composition root's ``(name, fields)`` hook, passed to each source.
        ice_servers: STUN/TURN servers; default none (host candidates only).
        backoff_initial_s / backoff_max_s: first and longest wait between attempts.
        make_source: builds the next source (tests pass fakes); default a real ``WhepSource``.
        rng: randomness for the jitter.
    """

    def __init__(self, url: str, room_id: str, speaker_id: str,
                 out: asyncio.Queue[SpeechSegment], *, token: str | None = None,
                 vad: VadParams | None = None,
                 on_gap: Callable[[StreamGap], None] | None = None,
                 on_event: EventHook | None = None, ice_servers: Sequence[RTCIceServer] = (),
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 10.0,
                 make_source: SourceFactory | None = None,
                 rng: random.Random | None = None) -> None:
        self.url, self.room_id, self.speaker_id = url, room_id, speaker_id
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.source: WhepSource | None = None
        """The source currently streaming (None between attempts)."""
        self.restarts = 0
        """Streams started after the first (each one followed an outage)."""
        self._make: SourceFactory = make_source or (lambda: WhepSource(
            url, room_id=room_id, speaker_id=speaker_id, out=out, token=token, vad=vad,
            ice_servers=ice_servers, on_event=on_event))
        self._on_gap = on_gap or (lambda gap: None)
        self._rng = rng or random.Random()
        self._down_since: float | None = None
        self._started_once = False
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.source is not None

    async def start(self) -> None:
        """Start pulling in the background (never raises for the server being away)."""
        self._task = asyncio.create_task(self._run(), name=f"whep-pull:{self.room_id}")

    async def close(self) -> None:
        """Stop the current stream (flushing its segments) and report an open gap."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.source is not None:
            await self.source.stop()
            self.source = None
        self._report_gap()

    async def _run(self) -> None:
        delay = self.backoff_initial_s
        while True:
            source = self._make()
            try:
                await source.start()
            except WhepError as exc:
                if self._down_since is None:
                    self._down_since = time.time()
                wait = delay * self._rng.uniform(0.5, 1.0)
                log.warning("whep_unavailable", url=self.url, room_id=self.room_id,
                            error=exc.reason, status=exc.status, retry_in_s=round(wait, 3))
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            self.source = source
            if self._started_once:
                self.restarts += 1
            self._started_once = True
            self._report_gap()
            delay = self.backoff_initial_s
            reason = await source.wait_closed()
            self.source = None
            self._down_since = time.time()
            log.warning("whep_stream_ended", url=self.url, room_id=self.room_id, reason=reason)
            await asyncio.sleep(delay * self._rng.uniform(0.5, 1.0))

    def _report_gap(self) -> None:
        since, self._down_since = self._down_since, None
        if since is None:
            return
        gap = StreamGap(self.room_id, self.speaker_id, since, max(time.time(), since),
                        GAP_REASON, "whep")
        try:
            self._on_gap(gap)
        except Exception:  # a reporting bug must not stop the puller
            log.exception("whep_gap_hook_failed", room_id=self.room_id)
