"""The console's Kafka tail: one consumer, no group, feeding :class:`AlertFeed`.

- **No consumer group.** Every console reads every partition (``assign``, not ``subscribe``):
  consoles are viewers, and a group would split the stream between them. Nothing is committed.
- **From the end.** Partitions present at start are read from their end; what happened just
  before comes from the audit store instead (:func:`~alerts.console.history.recent_history`,
  ``backfill_s``), so a restarted console still shows the last minutes. A topic that appears
  later (the reviews topic before the first review) is read from its beginning.
- **Three topics.** Alerts (the stream), escalations (the risk view) and reviews (statuses,
  including those made on other consoles). Records are told apart by ``ce_type``; one that does
  not decode or validate is logged and skipped (a viewer must not stop on a bad record).
- **Reconnects.** If Kafka goes away the consumer is rebuilt with capped, jittered backoff and
  resumes from the positions it had reached, so an outage loses nothing still on the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.client import AIOKafkaClient

from alerts.console.feed import AlertFeed
from alerts.console.history import AuditReader, recent_history
from alerts.console.hooks import EventHook, emit_event
from alerts.console.reviews import REVIEWS_TOPIC
from alerts.envelope import ALERTS_TOPIC, EnvelopeError, decode_record
from alerts.escalation_record import ESCALATIONS_TOPIC
from alerts.schemas import ALERT, ESCALATION, REVIEW, EventValidationError, validate

__all__ = ["DEFAULT_TOPICS", "ConsoleTopics", "LiveFeed"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ConsoleTopics:
    """The topics the console reads (from ``kafka.*`` settings) and writes reviews to."""

    alerts: str = ALERTS_TOPIC
    escalations: str = ESCALATIONS_TOPIC
    reviews: str = REVIEWS_TOPIC

    def all(self) -> tuple[str, ...]:
        return (self.alerts, self.escalations, self.reviews)


DEFAULT_TOPICS = ConsoleTopics()


class LiveFeed:
    """Keeps ``feed`` up to date from Kafka (and, at start, from the audit store).

    Args:
        feed: where alerts, reviews and escalations go.
        bootstrap_servers: Kafka.
        topics: what to read.
        store: the audit store for the backfill (None: no backfill).
        backfill_s: how far back the backfill reaches.
        client_id: Kafka client id.
        discover_every_s: how often missing topics are looked for (and partitions re-listed).
        on_event: optional hook ``(name, fields)``: ``record`` (``kind``), ``bad_record``
            (``reason``), ``backfilled`` (``count``).
    """

    def __init__(self, feed: AlertFeed, *, bootstrap_servers: str,
                 topics: ConsoleTopics = DEFAULT_TOPICS, store: AuditReader | None = None,
                 backfill_s: float = 900.0, client_id: str = "roomwarden-console",
                 discover_every_s: float = 5.0, on_event: EventHook | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.feed = feed
        self._bootstrap = bootstrap_servers
        self._topics = topics
        self._store = store
        self._backfill_s = backfill_s
        self._client_id = client_id
        self._discover_every_s = discover_every_s
        self._on_event = on_event
        self._clock = clock
        self._positions: dict[TopicPartition, int] = {}
        self._known: set[TopicPartition] = set()
        self._first_discovery = True
        self._task: asyncio.Task[None] | None = None
        self._assigned = asyncio.Event()
        self.connected = False
        self.bad_records = 0

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, wait_assigned_s: float = 10.0) -> None:
        """Backfill from the store, then start tailing Kafka; returns once the partitions
        present are assigned at their end (or after ``wait_assigned_s`` if Kafka is away:
        the tail keeps connecting in the background)."""
        if self._store is not None and self._backfill_s > 0:
            await self.backfill()
        self._task = asyncio.create_task(self._run(), name="console-kafka-tail")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._assigned.wait(), wait_assigned_s)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False

    async def backfill(self) -> int:
        """Feed the store's alerts, reviews and escalations of the last ``backfill_s``.
        A store error is logged, not raised: the live stream matters more than the past."""
        assert self._store is not None
        since = self._clock() - self._backfill_s
        try:
            entries = await asyncio.to_thread(recent_history, self._store, since)
        except Exception as exc:
            log.error("console_backfill_failed", error=repr(exc))
            return 0
        count = 0
        for entry in entries:
            count += self._take(entry.kind, entry.data, where=f"audit store {entry.event_id}")
        log.info("console_backfilled", entries=len(entries), taken=count, since=since)
        self._emit("backfilled", count=count)
        return count

    # --- the tail ---------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap,
                                        client_id=self._client_id, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="latest")
            # A consumer with an assignment only refreshes metadata of the assigned topics; a
            # client of its own sees topics created later (the reviews topic's first review).
            metadata = AIOKafkaClient(bootstrap_servers=self._bootstrap,
                                      client_id=f"{self._client_id}-metadata")
            try:
                await consumer.start()
                await metadata.bootstrap()
                backoff = 0.5
                await self._consume(consumer, metadata)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected:
                    log.warning("console_kafka_lost", bootstrap=self._bootstrap, error=repr(exc))
                self.connected = False
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                with contextlib.suppress(Exception):
                    await metadata.close()
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 10.0)

    async def _consume(self, consumer: AIOKafkaConsumer, metadata: AIOKafkaClient) -> None:
        assigned: set[TopicPartition] = set()
        next_discovery = 0.0
        while True:
            if time.monotonic() >= next_discovery:
                assigned = await self._discover(consumer, metadata, assigned)
                missing = {t for t in self._topics.all()} - {tp.topic for tp in assigned}
                next_discovery = time.monotonic() + (
                    self._discover_every_s if missing else 12 * self._discover_every_s)
            if not assigned:
                await asyncio.sleep(min(self._discover_every_s, 1.0))
                continue
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            self.connected = True
            for tp, messages in batch.items():
                for message in messages:
                    self._dispatch(message)
                if messages:
                    self._positions[tp] = messages[-1].offset + 1

    async def _discover(self, consumer: AIOKafkaConsumer, metadata: AIOKafkaClient,
                        assigned: set[TopicPartition]) -> set[TopicPartition]:
        cluster = await metadata.fetch_all_metadata()  # never creates topics
        found = {TopicPartition(topic, p) for topic in self._topics.all()
                 for p in (cluster.partitions_for_topic(topic) or ())}
        if found == assigned:
            self._first_discovery = False
            self._assigned.set()
            return assigned
        consumer.assign(sorted(found))
        fresh = sorted(tp for tp in found if tp not in self._positions)
        for tp in sorted(found - set(fresh)):
            consumer.seek(tp, self._positions[tp])
        if fresh:  # one offsets request for all of them
            if self._first_discovery:
                await consumer.seek_to_end(*fresh)
            else:  # appeared while we were running: all of it is new
                await consumer.seek_to_beginning(*fresh)
            for tp in fresh:
                self._positions[tp] = await consumer.position(tp)
        new = found - self._known
        self._known |= found
        if new:
            log.info("console_tailing", bootstrap=self._bootstrap,
                     partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in new))
        self.connected = True
        self._first_discovery = False
        self._assigned.set()
        return found

    def _dispatch(self, message: ConsumerRecord[Any, Any]) -> None:
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        try:
            attributes, data = decode_record(message.headers, message.value or b"")
        except EnvelopeError as exc:
            self._bad(where, str(exc))
            return
        kind = {ALERT.type: "alert", ESCALATION.type: "escalation",
                REVIEW.type: "review"}.get(attributes.get("type", ""))
        if kind is None:
            self._bad(where, f"unexpected event type {attributes.get('type')!r}")
            return
        self._take(kind, data, where=where)

    def _take(self, kind: str, data: Mapping[str, Any], *, where: str) -> int:
        """Validate and feed one event; 1 if it was new, 0 if known, skipped or bad."""
        if kind not in ("alert", "escalation", "review"):
            return 0
        try:
            validate(kind, data)
            if kind == "alert":
                new = self.feed.add_alert(data)
            elif kind == "escalation":
                new = self.feed.add_escalation(data)
            else:
                new = self.feed.add_review(data)
        except (EventValidationError, KeyError, TypeError, ValueError) as exc:
            self._bad(where, f"{kind}: {exc}")
            return 0
        self._emit("record", kind=kind)
        return int(new)

    def _bad(self, where: str, reason: str) -> None:
        self.bad_records += 1
        log.warning("console_bad_record", where=where, reason=reason[:300])
        self._emit("bad_record", reason=reason[:100])

    def _emit(self, name: str, **fields: Any) -> None:
        emit_event(self._on_event, name, fields)
