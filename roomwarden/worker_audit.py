"""The audit recorder as a Kafka consumer-group worker (``roomwarden worker audit``).

It follows every topic the audit log is made of -- transcripts, alerts, evidence audio,
escalations, reviews, gaps -- and writes each record into the audit store
(:mod:`alerts.audit`) as an entry of the room's hash chain. The poll -> decode -> process ->
ack -> commit loop, rebalances, SIGTERM and ``/metrics`` are :mod:`roomwarden.worker_loop`'s;
this module is what the recorder does with a poll::

    decode every record into an AuditEntry (alerts.audit_records; bad -> dead letter + reason)
    -> append the poll's entries in ONE store transaction (durable when it returns)
    -> store.maybe_checkpoint(every_s)             (a signed chain head now and then)
    -> (loop) await the dead letters' acks, THEN commit the poll's offsets

So everything a recorder committed on Kafka is in the store, whenever the process dies: a
crash before the commit re-delivers the poll, and the re-delivered entries are no-ops
(``append`` skips a ``(kind, event_id)`` already in the log), so the chain holds each event
once, with contiguous per-room sequence numbers.

The store is synchronous (sqlite3 / psycopg). Every call to it -- opening it included -- runs
on ONE dedicated thread: the event loop never waits on a disk flush, and a connection that
allows only the thread that made it (sqlite3's default) is always used from that thread. The
same thread serves the idle-time checkpoint ticker, so store calls never overlap.

A record the store itself refuses (ValueError/TypeError: content it cannot hash or keep) is
found by appending the poll's entries one by one, and dead-lettered with reason
``store_refused``; any other store error (disk full, database locked, server gone) stops the
worker with nothing committed, so the poll is retried after a restart instead of skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from alerts.audit import AuditEntry, StoredEntry
from alerts.audit_records import RECORDED_KINDS, BadAuditRecord, RecordedKind, audit_entry
from roomwarden.runner import RecordSink
from roomwarden.settings import AuditWorkerSettings, KafkaSettings
from roomwarden.worker_loop import ConsumerGroupWorker, Outbox, Record, Rejection, WorkerMetrics

log = structlog.get_logger(__name__)

APPEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                  30.0)
R = TypeVar("R")


def audit_topics(kafka: KafkaSettings, worker: AuditWorkerSettings) -> dict[str, RecordedKind]:
    """Input topic -> the kind of entry its records become, in the order a poll is appended
    (a transcript before the alerts raised on it and their evidence, when one poll has all)."""
    topics: dict[str, RecordedKind] = {
        kafka.transcripts_topic: "transcript",
        kafka.alerts_topic: "alert",
        kafka.evidence_topic: "evidence",
        kafka.escalations_topic: "escalation",
        kafka.reviews_topic: "review",
        kafka.gaps_topic: "gap",
    }
    if len(topics) != len(RECORDED_KINDS):
        raise ValueError("the audit recorder's topics must be distinct: "
                         f"{sorted(topics)} for {len(RECORDED_KINDS)} kinds of events")
    return topics


class AuditLog(Protocol):
    """What the recorder needs of :class:`alerts.audit.AuditStore`."""

    def append(self, entries: Sequence[AuditEntry]) -> list[StoredEntry]: ...

    def maybe_checkpoint(self, every_s: float) -> object: ...


class StoreThread:
    """Runs every call to a synchronous store on one dedicated thread (module docstring)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-store")

    def call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> Awaitable[R]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class AuditMetrics:
    """The recorder's own metrics (beside the worker loop's ``roomwarden_worker_audit_*``).

    Args:
        registry: where they are registered (the worker's :class:`~roomwarden.metrics.Metrics`
            registry).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.appended = Counter(
            "roomwarden_audit_records_appended_total",
            "Entries appended to the audit log, by kind.", ["kind"], registry=registry)
        self.duplicates = Counter(
            "roomwarden_audit_records_duplicate_total",
            "Records already in the audit log (a re-delivery or a replay), skipped, by kind.",
            ["kind"], registry=registry)
        self.append_seconds = Histogram(
            "roomwarden_audit_append_seconds",
            "One poll's append to the audit store (one transaction, flushed to disk).",
            buckets=APPEND_BUCKETS, registry=registry)
        self.checkpoints = Counter(
            "roomwarden_audit_checkpoints_total", "Signed checkpoints of room chain heads made.",
            registry=registry)


def audit_worker_metrics() -> tuple[WorkerMetrics, AuditMetrics]:
    """The recorder's metrics: the worker loop's (``roomwarden_worker_audit_*``) and its own
    (``roomwarden_audit_*``), on one registry."""
    worker = WorkerMetrics("audit")
    return worker, AuditMetrics(worker.base.registry)


class AuditHandler:
    """Decodes a poll into audit entries and appends them in one transaction (module
    docstring).

    Args:
        topics: input topic -> kind of entry (:func:`audit_topics`).
        store: the audit store, opened on ``thread``.
        thread: the store's thread.
        metrics: the recorder's own metrics.
        checkpoint_every_s: passed to ``store.maybe_checkpoint`` after each poll.
    """

    def __init__(self, *, topics: Mapping[str, RecordedKind], store: AuditLog,
                 thread: StoreThread, metrics: AuditMetrics, checkpoint_every_s: float) -> None:
        self._topics = dict(topics)
        self._store = store
        self._thread = thread
        self._metrics = metrics
        self._checkpoint_every_s = checkpoint_every_s

    def decode(self, record: Record) -> AuditEntry | Rejection:
        kind = self._topics.get(record.topic)
        if kind is None:  # subscribed topics only: a bug if reached
            return Rejection("unknown_topic", f"the recorder does not follow {record.topic!r}")
        try:
            return audit_entry(kind, record.key, record.headers, record.value)
        except BadAuditRecord as exc:
            return Rejection(exc.reason, exc.detail)

    async def handle(self, batch: list[tuple[Record, AuditEntry]],
                     out: Outbox) -> Mapping[str, Any]:
        # A poll may carry one event twice (a producer's retry): keep the first, so the
        # store's duplicate rule never has to work inside one transaction.
        unique: dict[tuple[str, str], tuple[Record, AuditEntry]] = {}
        for record, entry in batch:
            unique.setdefault((entry.kind, entry.event_id), (record, entry))
        items = list(unique.values())
        started = time.perf_counter()
        stored: list[StoredEntry] = []
        refused: Tally[str] = Tally()
        if items:
            try:
                stored = await self._thread.call(self._store.append, [e for _, e in items])
            except (ValueError, TypeError) as exc:
                log.warning("audit_append_refused", entries=len(items), error=repr(exc),
                            action="appending one by one to find the refused records")
                stored, refused = await self._one_by_one(items, out)
        append_s = time.perf_counter() - started
        self._metrics.append_seconds.observe(append_s)
        appended = Tally(s.kind for s in stored)
        for kind, offered in Tally(entry.kind for _, entry in batch).items():
            if appended[kind]:
                self._metrics.appended.labels(kind=kind).inc(appended[kind])
            if duplicates := offered - appended[kind] - refused[kind]:
                self._metrics.duplicates.labels(kind=kind).inc(duplicates)
        checkpoints = await self.checkpoint()
        return {"entries": len(batch), "appended": len(stored),
                "duplicates": len(batch) - len(stored) - refused.total(),
                "refused": refused.total(), "checkpoints": checkpoints,
                "append_s": round(append_s, 4)}

    async def checkpoint(self) -> int:
        """``store.maybe_checkpoint(every_s)`` on the store's thread; how many it made."""
        made = _count(await self._thread.call(self._store.maybe_checkpoint,
                                              self._checkpoint_every_s))
        if made:
            self._metrics.checkpoints.inc(made)
            log.info("audit_checkpoints", made=made, every_s=self._checkpoint_every_s)
        return made

    async def _one_by_one(self, items: list[tuple[Record, AuditEntry]],
                          out: Outbox) -> tuple[list[StoredEntry], Tally[str]]:
        stored: list[StoredEntry] = []
        refused: Tally[str] = Tally()
        for record, entry in items:
            try:
                stored.extend(await self._thread.call(self._store.append, [entry]))
            except (ValueError, TypeError) as exc:
                refused[entry.kind] += 1
                await out.dead_letter(record, "store_refused", str(exc))
        return stored, refused


def _count(made: object) -> int:
    """How many checkpoints ``maybe_checkpoint`` reports: a count, a list of them, one, none."""
    if made is None or made is False:
        return 0
    if isinstance(made, int):
        return made
    if isinstance(made, Sequence):
        return len(made)
    return 1


class AuditWorker(ConsumerGroupWorker[AuditEntry]):
    """Records the audit topics into the store, one transaction per poll, then commits.

    Args:
        params: group, dead-letter topic, batching, timeouts (``settings.audit_worker``).
        bootstrap_servers: Kafka to consume from.
        topics: input topic -> kind of entry (:func:`audit_topics`).
        store: the audit store, opened on ``thread``.
        thread: the store's thread (:class:`StoreThread`).
        sink: where dead letters go (``KafkaPublisher``).
        metrics: the worker loop's metrics and the recorder's (:func:`audit_worker_metrics`).
        source: CloudEvents source of the recorder (``roomwarden-dlq-worker`` header).
        checkpoint_every_s: how often the store signs its chain heads
            (``audit.checkpoint_every_s``).
        client_id: Kafka client id of the consumer.
    """

    def __init__(self, *, params: AuditWorkerSettings, bootstrap_servers: str,
                 topics: Mapping[str, RecordedKind], store: AuditLog, thread: StoreThread,
                 sink: RecordSink, metrics: tuple[WorkerMetrics, AuditMetrics], source: str,
                 checkpoint_every_s: float, client_id: str = "roomwarden-audit") -> None:
        worker_metrics, audit_metrics = metrics
        self.handler = AuditHandler(topics=topics, store=store, thread=thread,
                                    metrics=audit_metrics,
                                    checkpoint_every_s=checkpoint_every_s)
        super().__init__(params=params, topic=list(topics), bootstrap_servers=bootstrap_servers,
                         handler=self.handler, sink=sink, metrics=worker_metrics, source=source,
                         client_id=client_id, name="audit")

    async def tick_checkpoints(self, stop: asyncio.Event, every_s: float) -> None:
        """Until ``stop``: ``maybe_checkpoint`` every ``every_s`` even while no records come,
        so the last chain heads get signed without waiting for more traffic."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=every_s)
            except TimeoutError:
                await self.handler.checkpoint()
