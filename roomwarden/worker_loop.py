"""The consumer-group loop every pipeline worker runs (``worker asr``, ``worker policy``,
``worker audit``).

One poll is one batch, processed to the end before the next poll::

    getmany(max_records=N) -> decode every record         (bad -> dead-letter record, with reason)
                           -> the worker's handler works on the good ones (concurrently, if
                              it likes) and publishes its output through the batch's outbox
                           -> await every ack (output and dead letters)
                           -> commit exactly this poll's offsets (per partition: last + 1)

Offsets are committed only after Kafka acknowledged everything the batch produced, so a worker
that dies anywhere in between leaves its batch uncommitted and the group re-delivers it:
at-least-once. Output ids are deterministic (transcript id = segment id + model id, alert id =
segment id + rule + span), so the duplicates a re-processed batch produces are dropped by
consumers that dedupe by ``ce_id``.

Rebalances: when partitions are revoked, the listener waits (up to ``revoke_wait_s``) for the
batch in flight to be acked and committed, so a clean rebalance re-processes nothing. If the
wait runs out, or the commit loses a race with the rebalance anyway (``CommitFailedError``, a
partition no longer assigned), the commit is skipped and logged: the batch is re-processed by
whoever owns the partition next -- duplicates, never loss.

A record that Kafka refuses for good (a non-retriable error) stops the worker with
:class:`DeliveryError` and nothing committed, so the batch is retried after a restart rather
than skipped. What a handler fails on goes to the dead-letter topic with a reason instead of
blocking its partition forever.

Tansu (the embedded broker) runs consumer groups and offset commits correctly with aiokafka,
with two slow spots measured here: joining a group takes about half a session timeout, and a
member that leaves -- cleanly or killed -- is only dropped when its session times out, so a
restarted worker waits roughly ``session_timeout_ms`` * 1.5 before it gets partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

import structlog
from aiohttp import web
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from alerts.envelope import KafkaRecord
from alerts.publisher import KafkaPublisher
from alerts.segment_record import dead_letter_record
from roomwarden.metrics import Metrics
from roomwarden.runner import RecordSink
from roomwarden.settings import ConsumerGroupSettings

log = structlog.get_logger(__name__)

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
BATCH_SECONDS_BUCKETS = (0.01, 0.05, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)

Record: TypeAlias = ConsumerRecord[Any, Any]
"""A consumed record (key, value, headers: bytes)."""
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record cannot be used: it goes to the dead-letter topic with these headers."""

    reason: str
    """Stable label: ``roomwarden-dlq-reason`` header and metric label."""
    detail: str
    """What exactly is wrong (field and value): ``roomwarden-dlq-detail`` header."""


class DeliveryError(RuntimeError):
    """Kafka refused a worker's output or dead letter for good: the batch was not committed."""


class WorkerMetrics:
    """The shared :class:`Metrics` (ASR, transcripts, alerts, Kafka) plus the worker's own.

    Args:
        what: what the worker consumes (``segments``, ``transcripts``): part of the names of
            ``roomwarden_worker_<what>_consumed_total`` and ``..._dead_lettered_total``.
        metrics: the shared metrics to add to (default: a fresh registry).
    """

    def __init__(self, what: str, metrics: Metrics | None = None) -> None:
        self.base = metrics or Metrics()
        r = self.base.registry
        self.consumed = Counter(f"roomwarden_worker_{what}_consumed_total",
                                f"{what.capitalize()} records read from Kafka (good or bad).",
                                registry=r)
        self.dead_lettered = Counter(
            f"roomwarden_worker_{what}_dead_lettered_total",
            "Records sent to the dead-letter topic, by reason.", ["reason"], registry=r)
        self.batch_size = Histogram("roomwarden_worker_batch_size", "Records per poll.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram(
            "roomwarden_worker_batch_seconds", "Poll to commit of one batch.",
            buckets=BATCH_SECONDS_BUCKETS, registry=r)
        self.commits = Counter(
            "roomwarden_worker_commits_total",
            "Batch commits, by outcome (committed; skipped: lost to a rebalance, re-processed).",
            ["outcome"], registry=r)
        self.lag = Gauge("roomwarden_worker_consumer_lag",
                         "Records behind the partitions' high watermarks (assigned ones).",
                         registry=r)


class Outbox:
    """Where one batch's output goes. Every record published through it is remembered, so the
    loop can await all the acks before it commits."""

    def __init__(self, sink: RecordSink, metrics: WorkerMetrics, *, dlq_topic: str,
                 worker: str) -> None:
        self._sink = sink
        self._metrics = metrics
        self._dlq_topic = dlq_topic
        self._worker = worker
        self.acks: list[asyncio.Future[object]] = []
        self.dead_letters = 0

    async def publish(self, record: KafkaRecord,
                      on_ack: Callable[[], None] | None = None) -> None:
        """Hand ``record`` to the sink (waits only while its buffer is full); ``on_ack`` runs
        once Kafka acknowledged it."""
        ack = await self._sink.publish(record)
        published = self._metrics.base.published
        topic = record.topic

        async def counted() -> object:
            result = await ack
            published.labels(topic=topic).inc()
            if on_ack is not None:
                on_ack()
            return result

        self.acks.append(asyncio.ensure_future(counted()))

    async def dead_letter(self, record: Record, reason: str, detail: str) -> None:
        """Send ``record`` unchanged to the dead-letter topic, saying why and where from."""
        self.dead_letters += 1
        self._metrics.dead_lettered.labels(reason=reason).inc()
        log.warning("record_dead_lettered", reason=reason, detail=detail, topic=record.topic,
                    partition=record.partition, offset=record.offset,
                    key=(record.key or b"").decode("utf-8", "replace"))
        letter = dead_letter_record(
            topic=self._dlq_topic, key=record.key, headers=record.headers, value=record.value,
            reason=reason, detail=detail, source_topic=record.topic,
            source_partition=record.partition, source_offset=record.offset,
            worker=self._worker)
        try:
            await self.publish(letter)
        except ValueError:
            # Our headers pushed a record near the size limit over it: keep the evidence that
            # it existed (headers, where it was read) and drop the value.
            await self.publish(KafkaRecord(
                letter.topic, letter.key,
                [*letter.headers, ("roomwarden-dlq-value-dropped", b"1")], b""))


class BatchHandler(Protocol[T]):
    """What a worker does with its records; the loop does the rest (module docstring)."""

    def decode(self, record: Record) -> T | Rejection:
        """The record's content, or why it cannot be used (it is dead-lettered)."""
        ...

    async def handle(self, batch: list[tuple[Record, T]], out: Outbox) -> Mapping[str, Any]:
        """Work on a poll's good records, in order; publish output (and dead-letter what
        fails) through ``out``. Returns fields for the ``batch_committed`` log line."""
        ...


class ConsumerGroupWorker(Generic[T]):
    """Consumes ``topic`` in a group, hands each poll to ``handler``, awaits the acks, commits.

    Args:
        params: group, batching, timeouts (:class:`~roomwarden.settings.ConsumerGroupSettings`).
        topic: the input topic, or several (``worker audit`` records six). A poll's records
            reach the handler grouped by topic in the order given here, then by partition,
            then by offset; Kafka orders nothing across topics, so this is only a habit the
            handler may count on (e.g. a transcript before the alerts of the same poll).
        bootstrap_servers: Kafka to consume from.
        handler: decodes records and produces the output.
        sink: where output and dead letters go (``KafkaPublisher``).
        metrics: where observations go.
        source: CloudEvents ``source`` of this worker, e.g. ``/roomwarden/<instance>``; also
            the ``roomwarden-dlq-worker`` header of its dead letters.
        client_id: Kafka client id of the consumer.
        name: the worker's name in logs (``asr``, ``policy``).
    """

    def __init__(self, *, params: ConsumerGroupSettings, topic: str | Sequence[str],
                 bootstrap_servers: str, handler: BatchHandler[T], sink: RecordSink,
                 metrics: WorkerMetrics, source: str, client_id: str, name: str) -> None:
        self.params = params
        self.topics: tuple[str, ...] = (topic,) if isinstance(topic, str) else tuple(topic)
        if not self.topics or len(set(self.topics)) != len(self.topics):
            raise ValueError(f"{name} worker: input topics must be distinct and at least one, "
                             f"got {list(self.topics)}")
        self.topic = self.topics[0]
        """The (first) input topic."""
        self.name = name
        self._handler = handler
        self._sink = sink
        self._metrics = metrics
        self._source = source
        self._idle = asyncio.Event()
        self._idle.set()
        self._next: dict[TopicPartition, int] = {}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, client_id=client_id, group_id=params.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=params.fetch_max_wait_ms,
            session_timeout_ms=params.session_timeout_ms,
            heartbeat_interval_ms=params.heartbeat_interval_ms,
            max_poll_interval_ms=params.max_poll_interval_ms,
            rebalance_timeout_ms=max(params.session_timeout_ms,
                                     int(params.revoke_wait_s * 1000)))
        metrics.lag.set_function(self._lag)

    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    def where(self, topic: str, partition: int) -> str:
        """A partition as logs name it: ``"3"`` (one input topic), ``"<topic>:3"`` (several)."""
        return str(partition) if len(self.topics) == 1 else f"{topic}:{partition}"

    def partitions(self, tps: set[TopicPartition]) -> list[int] | list[str]:
        """Partitions for logs and ``/healthz``: numbers (one input topic) or
        ``"<topic>:<n>"`` (several)."""
        if len(self.topics) == 1:
            return sorted(tp.partition for tp in tps)
        return [self.where(tp.topic, tp.partition)
                for tp in sorted(tps, key=lambda t: (t.topic, t.partition))]

    async def start(self) -> None:
        """Connect and subscribe; partitions arrive with the first polls."""
        await self._consumer.start()
        self._consumer.subscribe(list(self.topics), listener=_Listener(self))
        log.info("worker_started", worker=self.name, group_id=self.params.group_id,
                 topic=",".join(self.topics), dlq_topic=self.params.dlq_topic,
                 max_batch=self.params.max_batch)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and process batches until ``stop`` is set; the batch in flight always finishes
        (acked and committed) before this returns."""
        p = self.params
        while not stop.is_set():
            batch = await self._consumer.getmany(timeout_ms=p.poll_timeout_ms,
                                                 max_records=p.max_batch)
            order = {t: i for i, t in enumerate(self.topics)}
            records = [r for tp in sorted(batch, key=lambda t: (order.get(t.topic, 0),
                                                                 t.partition))
                       for r in batch[tp]]
            if not records:
                continue
            self._idle.clear()
            try:
                await self._process(records)
            finally:
                self._idle.set()

    async def stop(self) -> None:
        """Leave the group and close the consumer (nothing is committed here)."""
        await self._consumer.stop()

    async def _process(self, records: list[Record]) -> None:
        started = time.monotonic()
        m = self._metrics
        m.consumed.inc(len(records))
        m.batch_size.observe(len(records))
        out = Outbox(self._sink, m, dlq_topic=self.params.dlq_topic, worker=self._source)
        good: list[tuple[Record, T]] = []
        for record in records:
            decoded = self._handler.decode(record)
            if isinstance(decoded, Rejection):
                await out.dead_letter(record, decoded.reason, decoded.detail)
            else:
                good.append((record, decoded))
        try:
            fields = await self._handler.handle(good, out)
        except BaseException:
            for ack in out.acks:  # nothing committed: the batch is re-delivered
                ack.cancel()
            raise
        results = await asyncio.gather(*out.acks, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise DeliveryError(f"{len(failed)} of {len(results)} record(s) of a batch were not "
                                f"delivered ({failed[0]!r}); nothing committed, the batch will "
                                "be re-processed")
        committed = await self._commit(records)
        seconds = time.monotonic() - started
        m.batch_seconds.observe(seconds)
        log.info("batch_committed" if committed else "batch_not_committed", worker=self.name,
                 records=len(records), dead_letters=out.dead_letters, **fields,
                 seconds=round(seconds, 3),
                 last_offsets={self.where(r.topic, r.partition): r.offset for r in records})

    async def _commit(self, records: list[Record]) -> bool:
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, -1), r.offset + 1)
        self._next.update(offsets)
        try:
            await self._consumer.commit({tp: OffsetAndMetadata(o, "")
                                         for tp, o in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved to another member meanwhile: it re-processes the batch.
            self._metrics.commits.labels(outcome="skipped").inc()
            log.warning("commit_skipped_rebalanced", worker=self.name, error=repr(exc),
                        offsets={self.where(tp.topic, tp.partition): o
                                 for tp, o in offsets.items()})
            return False
        self._metrics.commits.labels(outcome="committed").inc()
        return True

    def _lag(self) -> float:
        lag = 0
        for tp in self._consumer.assignment():
            high, position = self._consumer.highwater(tp), self._next.get(tp)
            if high is not None and position is not None:
                lag += max(0, high - position)
        return float(lag)

    async def wait_idle(self, timeout: float) -> bool:  # noqa: ASYNC109 - a bounded wait
        """Wait until no batch is in flight; False if ``timeout`` seconds ran out first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        return False


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: ConsumerGroupWorker[Any]) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if not revoked:
            return
        if not await self._worker.wait_idle(self._worker.params.revoke_wait_s):
            log.warning("revoke_without_commit", worker=self._worker.name,
                        partitions=self._worker.partitions(revoked),
                        reason="batch still in flight; it will be re-processed")
        log.info("partitions_revoked", worker=self._worker.name,
                 partitions=self._worker.partitions(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions_assigned", worker=self._worker.name,
                 partitions=self._worker.partitions(assigned))


async def run_worker(worker: ConsumerGroupWorker[Any], *, publisher: KafkaPublisher,
                     metrics: WorkerMetrics, stop: asyncio.Event | None = None) -> int:
    """Serve the worker's ``/metrics`` and ``/healthz``, run it until ``stop`` (default:
    SIGTERM/SIGINT) is set -- the batch in flight is finished, acked and committed -- then
    leave the group and flush the publisher. The caller starts ``publisher`` and closes what
    the handler holds (a model). Returns the exit status (0)."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    http = await _serve_metrics(worker, publisher, metrics)
    try:
        await worker.start()
        await worker.run(stop)
        log.info("worker_stopping", worker=worker.name,
                 reason="stop requested; last batch committed")
    finally:
        await worker.stop()
        await publisher.stop()
        await http.cleanup()
    return 0


async def _serve_metrics(worker: ConsumerGroupWorker[Any], publisher: KafkaPublisher,
                         metrics: WorkerMetrics) -> web.AppRunner:
    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.base.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        ok = bool(publisher.connected)
        body = {"ok": ok, "kafka_connected": ok, "worker": worker.name,
                "partitions": worker.partitions(worker.assignment)}
        return web.json_response(body, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    p = worker.params
    site = web.TCPSite(runner, p.metrics_host, p.metrics_port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    log.info("worker_metrics", worker=worker.name,
             url=f"http://{p.metrics_host}:{port}/metrics")
    return runner

