"""Settings and result types of :class:`alerts.publisher.KafkaPublisher`.

Every field of :class:`PublisherParams` is documented where it is defined (the aiokafka habit).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from aiokafka import codec as kafka_codec

__all__ = ["Ack", "EventHook", "PublisherClosedError", "PublisherParams"]

EventHook = Callable[[str, Mapping[str, Any]], None]
"""``on_event(name, fields)``: called on the event loop, must not block. Names:

- ``connected``: producer (re)connected. Fields: ``bootstrap``, ``outage_s`` (None at first).
- ``disconnected``: Kafka became unreachable. Fields: ``bootstrap``, ``error``.
- ``connect_failed``: a connection attempt failed. ``error``, ``attempt``, ``retry_in_s``.
- ``acked``: one record acknowledged. ``topic``, ``partition``, ``offset``, ``latency_s``
  (publish call to ack, buffering included), ``attempts``.
- ``send_failed``: one produce attempt failed (a batch). ``topic``, ``partition``, ``records``,
  ``error``, ``retriable``, ``attempt``, ``retry_in_s``.
- ``delivery_failed``: a record was given up on (non-retriable error). ``topic``, ``error``.
- ``buffer_full``: ``publish`` has to wait for room. ``buffered``.
- ``stopped``: ``remaining`` (records not delivered), ``in_flight`` (of those, sent but not
  acknowledged: may have been written).
"""

_CODECS: dict[str, Callable[[], bool]] = {
    "gzip": kafka_codec.has_gzip,
    "snappy": kafka_codec.has_snappy,
    "lz4": kafka_codec.has_lz4,
    "zstd": kafka_codec.has_zstd,
}
class Ack(NamedTuple):
    """Where Kafka stored a record."""

    partition: int
    offset: int


class PublisherClosedError(RuntimeError):
    """The publisher was stopped: the record was not (or not knowingly) delivered."""


@dataclass(frozen=True, slots=True)
class PublisherParams:
    """How :class:`KafkaPublisher` talks to Kafka.

    Attributes:
        bootstrap_servers (str): ``host:port[,host:port...]`` of the Kafka cluster.
        client_id (str): name of this client in broker logs and quotas. Default ``roomwarden``.
        acks (``"all"``, 1 or 0): acknowledgements a produce request waits for. ``"all"``: every
            in-sync replica has the record (the only setting where an ack means "durable").
            ``1``: the leader has it. ``0``: no wait, offsets are unknown (acks resolve with
            offset -1). Strings ``"1"``/``"0"`` are accepted. Default ``"all"``.
        enable_idempotence (bool): idempotent producer: the broker drops duplicates of retried
            batches. Turn it on for Apache Kafka (it requires ``acks="all"``). Default False
            here because Tansu, the embedded broker, answers the ``InitProducerId`` request with
            UnknownError, so an idempotent producer cannot start against it; alert and
            transcript ids are deterministic, so consumers can deduplicate by ``ce_id`` anyway.
        linger_ms (int): how long a partition's next batch waits for more records before it is
            sent (only when the batch is not full). Costs up to this much latency, saves
            requests under load. Default 5.
        compression_type (``"gzip"`` or None): batch compression. gzip is in the standard
            library and works with Tansu and Kafka; ``snappy``/``lz4``/``zstd`` are accepted
            only if aiokafka's optional ``cramjam`` dependency is installed. Default ``"gzip"``.
        request_timeout_ms (int): how long one produce or metadata request may take before it
            counts as failed (and is retried). Also bounds how long :meth:`KafkaPublisher.stop`
            may wait for a batch already handed to the client. Default 10000.
        max_batch_size (int): bytes per batch (per partition per request). Default 16384.
        max_request_size (int): the largest record accepted; ``publish`` rejects bigger ones
            with ValueError. Keep it at or below the broker's ``message.max.bytes``.
            Default 1048576.
        buffer_max_records (int): records held in memory waiting for Kafka (queued, being
            sent, or awaiting their ack). When full, ``publish`` waits. Default 10000.
        retry_backoff_ms (int): first delay before retrying a failed send or connection
            attempt; also aiokafka's internal retry backoff. Default 100.
        retry_backoff_max_ms (int): the delay never grows beyond this. Keep it small: it is
            also how late delivery may resume after Kafka comes back. Default 5000.
        retry_backoff_multiplier (float): growth of the delay per consecutive failure.
            Default 2.0.
        retry_jitter (float): fraction of each delay that is randomised (0 = none, 1 = full
            jitter), so many publishers do not retry in lock-step. Default 0.2.
        unreachable_log_interval_s (float): while Kafka stays unreachable, repeat the warning
            at most this often (the first failure is always logged). Default 30.
    """

    bootstrap_servers: str
    client_id: str = "roomwarden"
    acks: Literal["all", "1", "0", 1, 0, -1] = "all"
    enable_idempotence: bool = False
    linger_ms: int = 5
    compression_type: str | None = "gzip"
    request_timeout_ms: int = 10_000
    max_batch_size: int = 16_384
    max_request_size: int = 1_048_576
    buffer_max_records: int = 10_000
    retry_backoff_ms: int = 100
    retry_backoff_max_ms: int = 5_000
    retry_backoff_multiplier: float = 2.0
    retry_jitter: float = 0.2
    unreachable_log_interval_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise ValueError("bootstrap_servers is empty")
        if self.acks not in ("all", "1", "0", 1, 0, -1):
            raise ValueError(f"acks must be 'all', 1 or 0, not {self.acks!r}")
        if self.enable_idempotence and self.kafka_acks != "all":
            raise ValueError("enable_idempotence=True requires acks='all'")
        if self.compression_type is not None:
            has = _CODECS.get(self.compression_type)
            if has is None:
                raise ValueError(f"unknown compression_type {self.compression_type!r}; "
                                 f"use one of {sorted(_CODECS)} or None")
            if not has():
                raise ValueError(f"compression_type {self.compression_type!r} needs aiokafka's "
                                 "optional 'cramjam' package; use 'gzip' or None")
        for name in ("request_timeout_ms", "max_batch_size", "max_request_size",
                     "buffer_max_records", "retry_backoff_ms", "retry_backoff_max_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.linger_ms < 0:
            raise ValueError("linger_ms must be >= 0")
        if self.retry_backoff_multiplier < 1:
            raise ValueError("retry_backoff_multiplier must be >= 1")
        if not 0 <= self.retry_jitter <= 1:
            raise ValueError("retry_jitter must be within [0, 1]")

    @property
    def kafka_acks(self) -> Literal["all", 1, 0]:
        """``acks`` in aiokafka's form."""
        return "all" if self.acks in ("all", -1) else (1 if self.acks in ("1", 1) else 0)

    def backoff_s(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Delay before retry number ``attempt`` (1-based): exponential, capped, jittered down.

        ``min(max, first * multiplier**(attempt-1)) * (1 - jitter * rand())``.
        """
        base = min(self.retry_backoff_max_ms,
                   self.retry_backoff_ms * self.retry_backoff_multiplier ** max(attempt - 1, 0))
        return base * (1.0 - self.retry_jitter * rand()) / 1000.0
