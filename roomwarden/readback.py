"""Read records back from a Kafka topic between two points in time (offsets).

Used by ``demo`` to show what actually landed on the broker, and by tests and benchmarks.
No consumer group: partitions are assigned explicitly, so reading back commits nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    value: bytes


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Current end offset of every partition of ``topic`` (empty if it does not exist yet)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # refreshes cluster metadata without creating the topic
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def read_records(
    bootstrap: str,
    topic: str,
    since: dict[int, int] | None = None,
    *,
    within_s: float = 10.0,
) -> list[ConsumedRecord]:
    """Every record of ``topic`` from offsets ``since`` (default: the start) up to its end now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    out: list[ConsumedRecord] = []
    try:
        await consumer.topics()
        partitions = sorted(consumer.partitions_for_topic(topic) or set())
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return out
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            start = (since or {}).get(tp.partition, 0)
            consumer.seek(tp, start)
        pending = {tp for tp in tps if (await consumer.position(tp)) < ends[tp]}
        deadline = time.monotonic() + within_s
        while pending and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            # Keep whatever the fetch returns, even past the end snapshot: Tansu reports the end
            # of a partition as (base offset of its last batch + 1), short of the batch's last
            # record, and Kafka may simply have gained records since.
            for msgs in batch.values():
                for m in msgs:
                    out.append(ConsumedRecord(m.topic, m.partition, m.offset, m.key,
                                              tuple(m.headers), m.value or b""))
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            await asyncio.sleep(0)
        if pending:
            raise TimeoutError(f"read back of {topic} incomplete after {within_s:.0f} s")
        return out
    finally:
        await consumer.stop()
