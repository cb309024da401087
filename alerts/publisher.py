"""Deliver records to Kafka without losing them while Kafka is away.

``KafkaPublisher`` wraps an aiokafka producer with the guarantees an alert pipeline needs:

- **Never fails to start.** If Kafka is unreachable, :meth:`KafkaPublisher.start` logs
  ``Kafka at HOST:PORT unreachable: ...`` and keeps connecting in the background (exponential
  backoff with jitter). Records published meanwhile wait in a bounded in-memory buffer.
- **Back-pressure, not loss.** When ``buffer_max_records`` records are waiting, ``publish``
  waits for room. ``buffered`` and ``connected`` are there for metrics and health checks.
- **Retries, in order per key.** A failed send is retried (with backoff) until it succeeds or
  fails with a non-retriable error. Records go out per partition as explicit batches with at
  most one batch in flight per partition, so a retried batch can never be overtaken by a later
  one: records of one key (one room) are delivered in the order they were published, also
  across outages.
- **At least once.** A send that timed out may have been written; its retry then duplicates it.
  Event ids are deterministic (``ce_id``), so consumers deduplicate by id. With Apache Kafka,
  ``enable_idempotence=True`` removes those duplicates at the broker.

Usage::

    publisher = KafkaPublisher(PublisherParams(bootstrap_servers="kafka:9092"))
    await publisher.start()
    ack = await publisher.publish(record)     # waits only when the buffer is full
    partition, offset = await ack             # resolves when Kafka acknowledged the record
    undelivered = await publisher.stop(timeout=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)
from aiokafka.partitioner import DefaultPartitioner

from alerts.envelope import KafkaRecord
from alerts.publisher_params import Ack, EventHook, PublisherClosedError, PublisherParams

__all__ = ["Ack", "EventHook", "KafkaPublisher", "PublisherClosedError", "PublisherParams"]

_CONNECTION_ERRORS = (
    KafkaConnectionError, NodeNotReadyError, RequestTimedOutError, KafkaTimeoutError,
    TimeoutError, OSError,
)
# Overhead of one record in a v2 batch beyond key, value and headers (varints, attributes).
_RECORD_OVERHEAD = 64


class _Entry:
    __slots__ = ("attempts", "enqueued", "future", "record", "size", "timestamp_ms")

    def __init__(self, record: KafkaRecord, future: asyncio.Future[Ack]) -> None:
        self.record = record
        self.future = future
        self.enqueued = time.monotonic()
        self.timestamp_ms = int(time.time() * 1000)
        self.attempts = 0
        self.size = _record_size(record)


class _Lane:
    """The records bound for one partition, sent one batch at a time."""

    __slots__ = ("bytes", "entries", "in_flight", "partition", "task", "topic", "wake")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.entries: deque[_Entry] = deque()
        self.bytes = 0
        self.in_flight = 0
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class KafkaPublisher:
    """Publishes :class:`~alerts.envelope.KafkaRecord` s to Kafka; see the module docstring.

    Args:
        params: connection and delivery settings.
        on_event: optional hook ``(name, fields)`` for metrics and logs (see :data:`EventHook`).
            Exceptions it raises are logged and otherwise ignored.
    """

    def __init__(self, params: PublisherParams, *, on_event: EventHook | None = None) -> None:
        self._params = params
        self._on_event = on_event
        self._log = structlog.get_logger(__name__).bind(bootstrap=params.bootstrap_servers)
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()
        self._slots = asyncio.Semaphore(params.buffer_max_records)
        self._incoming: deque[_Entry] = deque()
        self._incoming_wake = asyncio.Event()
        self._lanes: dict[tuple[str, int], _Lane] = {}
        self._outstanding = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self._ready = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._progress = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = False
        self._down_since: float | None = None
        self._last_warning = 0.0
        self._started = False
        self._closing = False
        self._stopped = False

    # --- state for metrics ------------------------------------------------------------------

    @property
    def params(self) -> PublisherParams:
        return self._params

    @property
    def connected(self) -> bool:
        """True while the producer is connected and its last request went through."""
        return self._connected

    @property
    def buffered(self) -> int:
        """Records accepted by :meth:`publish` and not yet acknowledged (or given up on)."""
        return self._outstanding

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to Kafka, or start retrying in the background if it is unreachable.

        Returns after the first connection attempt (at most ``request_timeout_ms``); never
        raises because Kafka is down. Check :attr:`connected` for the outcome.
        """
        if self._started:
            return
        if self._closing:
            raise PublisherClosedError("publisher was stopped; make a new one")
        self._started = True
        self._tasks.append(asyncio.create_task(self._connect_loop(), name="kafka-connect"))
        self._tasks.append(asyncio.create_task(self._route_loop(), name="kafka-route"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(),
                                   self._params.request_timeout_ms / 1000)

    async def stop(self, timeout: float = 10.0) -> int:  # noqa: ASYNC109 - bounds the flush
        """Deliver what can be delivered within ``timeout`` seconds, then close.

        Records still unacknowledged then have their futures failed with
        :class:`PublisherClosedError`; they are counted, logged and returned. Closing the
        client may take up to ``request_timeout_ms`` longer if a batch was in flight.

        Returns:
            The number of records that were not (knowingly) delivered.
        """
        if self._stopped:
            return 0
        self._closing = True
        if self._outstanding and self._started:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout)
        tasks = self._tasks + [lane.task for lane in self._lanes.values() if lane.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

        leftovers = list(self._incoming)
        in_flight = 0
        for lane in self._lanes.values():
            in_flight += lane.in_flight
            leftovers.extend(lane.entries)
            lane.entries.clear()
        self._incoming.clear()
        remaining = len(leftovers)
        if remaining:
            per_topic = Counter(e.record.topic for e in leftovers)
            self._log.error(
                f"{remaining} record(s) not delivered to Kafka at "
                f"{self._params.bootstrap_servers} before stop ({in_flight} sent but not "
                "acknowledged: those may have been written)",
                remaining=remaining, in_flight=in_flight, per_topic=dict(per_topic),
            )
            error = PublisherClosedError(
                f"publisher stopped before Kafka at {self._params.bootstrap_servers} "
                "acknowledged the record")
            for entry in leftovers:
                self._settle(entry, error=error)
        self._emit("stopped", remaining=remaining, in_flight=in_flight)
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
        self._connected = False
        self._stopped = True
        return remaining

    async def __aenter__(self) -> KafkaPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- publishing --------------------------------------------------------------------------

    async def publish(self, record: KafkaRecord) -> asyncio.Future[Ack]:
        """Queue a record for delivery; return a future of its :class:`Ack`.

        Waits only while the buffer holds ``buffer_max_records`` records (back-pressure). The
        future resolves with ``(partition, offset)`` once Kafka acknowledged the record, or
        fails with the non-retriable error that made it undeliverable, or with
        :class:`PublisherClosedError` if :meth:`stop` came first.

        Raises:
            PublisherClosedError: the publisher is stopping or stopped.
            ValueError: the record is larger than ``max_request_size``.
        """
        if self._closing:
            raise PublisherClosedError("publisher is stopped")
        size = _record_size(record)
        if size > self._params.max_request_size:
            raise ValueError(f"record of {size} bytes for {record.topic} exceeds "
                             f"max_request_size={self._params.max_request_size}")
        if self._slots.locked():
            self._emit("buffer_full", buffered=self._outstanding)
        await self._slots.acquire()
        if self._closing:
            self._slots.release()
            raise PublisherClosedError("publisher is stopped")
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        # Failures are logged and reported through on_event; do not also warn about futures
        # nobody awaited.
        future.add_done_callback(_mark_retrieved)
        self._outstanding += 1
        self._drained.clear()
        self._incoming.append(_Entry(record, future))
        self._incoming_wake.set()
        return future

    # --- background tasks --------------------------------------------------------------------

    async def _connect_loop(self) -> None:
        p = self._params
        attempt = 0
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=p.bootstrap_servers,
                client_id=p.client_id,
                acks=p.kafka_acks,
                enable_idempotence=p.enable_idempotence,
                linger_ms=p.linger_ms,
                compression_type=p.compression_type,
                request_timeout_ms=p.request_timeout_ms,
                max_batch_size=p.max_batch_size,
                max_request_size=p.max_request_size,
                retry_backoff_ms=p.retry_backoff_ms,
            )
            try:
                await producer.start()
            except asyncio.CancelledError:
                await _quiet_stop(producer)
                raise
            except Exception as exc:
                await _quiet_stop(producer)
                attempt += 1
                delay = p.backoff_s(attempt)
                self._connect_failed(exc, attempt, delay)
                self._first_attempt.set()
                await asyncio.sleep(delay)
                continue
            self._producer = producer
            self._mark_up()
            self._ready.set()
            self._first_attempt.set()
            return

    async def _route_loop(self) -> None:
        """Assign queued records to partition lanes, in publish order."""
        await self._ready.wait()
        producer = self._producer
        assert producer is not None
        attempt = 0
        while True:
            if not self._incoming:
                self._incoming_wake.clear()
                await self._incoming_wake.wait()
                continue
            entry = self._incoming[0]
            topic = entry.record.topic
            try:
                partitions = sorted(await producer.partitions_for(topic))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _retriable(exc):
                    self._incoming.popleft()
                    self._give_up(entry, exc)
                    continue
                attempt += 1
                delay = self._params.backoff_s(attempt)
                self._failed(exc, topic=topic, partition=None, records=1, attempt=attempt,
                             delay=delay, retriable=True)
                await self._sleep(delay)
                continue
            attempt = 0
            self._incoming.popleft()
            partition = self._partitioner(entry.record.key, partitions, partitions)
            lane = self._lanes.get((topic, partition))
            if lane is None:
                lane = self._lanes[(topic, partition)] = _Lane(topic, partition)
                lane.task = asyncio.create_task(self._lane_loop(lane),
                                                name=f"kafka-{topic}-{partition}")
            lane.entries.append(entry)
            lane.bytes += entry.size
            lane.wake.set()

    async def _lane_loop(self, lane: _Lane) -> None:
        """Send one partition's records, one batch at a time, retrying failures in place."""
        p = self._params
        producer = self._producer
        assert producer is not None
        attempt = 0
        refresh = False  # refresh metadata before the next send
        solo = 0  # after a non-retriable batch failure: send this many records one by one
        while True:
            if not lane.entries:
                lane.wake.clear()
                await lane.wake.wait()
                continue
            if attempt == 0 and p.linger_ms and lane.bytes < p.max_batch_size:
                wait = p.linger_ms / 1000 - (time.monotonic() - lane.entries[0].enqueued)
                if wait > 0:
                    await asyncio.sleep(wait)
            batch = producer.create_batch()
            count = 0
            for entry in lane.entries:
                if solo and count == 1:
                    break
                r = entry.record
                if batch.append(key=r.key, value=r.value, timestamp=entry.timestamp_ms,
                                headers=r.headers) is None:
                    break
                count += 1
            batch.close()  # send now: lingering already happened above
            lane.in_flight = count
            try:
                if refresh:
                    # After a connection failure the cached metadata may be stale (new leader,
                    # restarted broker). Tansu's memory storage even acknowledges -- and drops --
                    # records for a topic it lost in a restart; a metadata request re-creates it.
                    if not await producer.client.force_metadata_update():
                        raise KafkaConnectionError("metadata refresh failed: no broker answered")
                    refresh = False
                delivery = await producer.send_batch(batch, lane.topic, partition=lane.partition)
                metadata = await delivery
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                lane.in_flight = 0
                for entry in _head(lane.entries, count):
                    entry.attempts += 1
                if _retriable(exc):
                    attempt += 1
                    refresh = refresh or isinstance(exc, _CONNECTION_ERRORS)
                    delay = p.backoff_s(attempt)
                    self._failed(exc, topic=lane.topic, partition=lane.partition,
                                 records=count, attempt=attempt, delay=delay, retriable=True)
                    await self._sleep(delay)
                elif count > 1:
                    # One bad record must not sink its batch-mates: retry them one at a time.
                    self._failed(exc, topic=lane.topic, partition=lane.partition,
                                 records=count, attempt=attempt + 1, delay=0.0, retriable=False)
                    solo = count
                else:
                    entry = lane.entries.popleft()
                    lane.bytes -= entry.size
                    solo = max(solo - 1, 0)
                    self._give_up(entry, exc)
                continue
            lane.in_flight = 0
            attempt = 0
            solo = max(solo - count, 0)
            self._mark_up()
            base = -1 if metadata is None else metadata.offset  # None: acks=0
            for i in range(count):
                entry = lane.entries.popleft()
                lane.bytes -= entry.size
                offset = base + i if base >= 0 else -1
                self._emit("acked", topic=lane.topic, partition=lane.partition, offset=offset,
                           latency_s=time.monotonic() - entry.enqueued,
                           attempts=entry.attempts + 1)
                self._settle(entry, ack=Ack(lane.partition, offset))

    # --- bookkeeping ---------------------------------------------------------------------

    def _settle(self, entry: _Entry, *, ack: Ack | None = None,
                error: BaseException | None = None) -> None:
        if not entry.future.done():
            if error is not None:
                entry.future.set_exception(error)
            else:
                entry.future.set_result(ack)  # type: ignore[arg-type]
        self._outstanding -= 1
        self._slots.release()
        if self._outstanding == 0:
            self._drained.set()

    def _give_up(self, entry: _Entry, exc: BaseException) -> None:
        record = entry.record
        self._log.error(f"record for {record.topic} not delivered: {exc!r} (not retriable)",
                        topic=record.topic, key=record.key.decode("utf-8", "replace"),
                        ce_id=_ce_id(record), error=repr(exc))
        self._emit("delivery_failed", topic=record.topic, error=repr(exc))
        self._settle(entry, error=exc)

    def _mark_up(self) -> None:
        if self._connected:
            return
        self._connected = True
        outage = None if self._down_since is None else time.monotonic() - self._down_since
        self._down_since = None
        if outage is None:
            self._log.info(f"connected to Kafka at {self._params.bootstrap_servers}")
        else:
            self._log.info(
                f"Kafka at {self._params.bootstrap_servers} reachable again after "
                f"{outage:.1f} s; delivering {self._outstanding} buffered record(s)",
                outage_s=round(outage, 3), buffered=self._outstanding)
        self._emit("connected", bootstrap=self._params.bootstrap_servers, outage_s=outage)
        # Wake every lane sleeping off a backoff: the way is open again.
        self._progress.set()
        self._progress = asyncio.Event()

    def _connect_failed(self, exc: BaseException, attempt: int, delay: float) -> None:
        bootstrap = self._params.bootstrap_servers
        if isinstance(exc, _CONNECTION_ERRORS):
            what = f"Kafka at {bootstrap} unreachable: {exc}"
        else:
            what = f"Kafka at {bootstrap} refused the producer: {exc!r}"
            if self._params.enable_idempotence:
                what += (" (enable_idempotence=True: brokers without InitProducerId support, "
                         "e.g. Tansu, reject idempotent producers)")
        self._emit("connect_failed", error=repr(exc), attempt=attempt, retry_in_s=delay)
        self._report_down(what, exc, delay)

    def _failed(self, exc: BaseException, *, topic: str, partition: int | None, records: int,
                attempt: int, delay: float, retriable: bool) -> None:
        self._emit("send_failed", topic=topic, partition=partition, records=records,
                   error=repr(exc), retriable=retriable, attempt=attempt, retry_in_s=delay)
        if isinstance(exc, _CONNECTION_ERRORS):
            self._report_down(f"Kafka at {self._params.bootstrap_servers} unreachable: "
                              f"{exc!r}", exc, delay)
        elif attempt == 1 or attempt % 10 == 0 or not retriable:  # a stuck retry stays quiet
            self._log.warning(f"send to {topic} failed: {exc!r}", topic=topic,
                              partition=partition, records=records, attempt=attempt,
                              retriable=retriable, retry_in_s=round(delay, 3))

    def _report_down(self, what: str, exc: BaseException, delay: float) -> None:
        now = time.monotonic()
        fields = {"error": repr(exc), "retry_in_s": round(delay, 3), "buffered": self._outstanding}
        if self._connected or self._down_since is None:  # it just went (or was never) up
            self._connected = False
            self._down_since = self._last_warning = now
            self._log.error(f"{what}; retrying with backoff, records wait in memory (up to "
                            f"{self._params.buffer_max_records})", **fields)
            self._emit("disconnected", bootstrap=self._params.bootstrap_servers, error=repr(exc))
        elif now - self._last_warning >= self._params.unreachable_log_interval_s:
            self._last_warning = now
            self._log.warning(f"{what}; still retrying after {now - self._down_since:.0f} s",
                              **fields)

    async def _sleep(self, delay: float) -> None:
        """Back off for ``delay`` seconds, or less if another lane gets through meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._progress.wait(), delay)

    def _emit(self, name: str, **fields: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, fields)
        except Exception:
            self._log.exception("on_event hook failed", event_name=name)


def _head(entries: deque[_Entry], n: int) -> list[_Entry]:
    return [entries[i] for i in range(min(n, len(entries)))]


def _retriable(exc: BaseException) -> bool:
    # A timeout and a partition missing from metadata (AssertionError in aiokafka) are worth
    # retrying even though aiokafka does not flag them retriable.
    if isinstance(exc, (KafkaTimeoutError, TimeoutError, OSError, AssertionError)):
        return True
    return bool(getattr(exc, "retriable", False))


def _record_size(record: KafkaRecord) -> int:
    return (len(record.key) + len(record.value) + _RECORD_OVERHEAD
            + sum(len(k) + len(v) + 2 for k, v in record.headers))


def _ce_id(record: KafkaRecord) -> str | None:
    raw = record.header("ce_id")
    return raw.decode("utf-8", "replace") if raw is not None else None


def _mark_retrieved(future: asyncio.Future[Ack]) -> None:
    if not future.cancelled():
        future.exception()


async def _quiet_stop(producer: AIOKafkaProducer) -> None:
    with contextlib.suppress(Exception):
        await producer.stop()
