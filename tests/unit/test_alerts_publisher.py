"""KafkaPublisher without a broker: parameters, backoff, buffering and stop accounting.
(Delivery itself is tested against a real broker in tests/integration/test_kafka_publisher.py.)
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from alerts.envelope import KafkaRecord
from alerts.publisher import KafkaPublisher, PublisherClosedError, PublisherParams


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def record(i: int = 0, size: int = 10) -> KafkaRecord:
    return KafkaRecord("t.v1", b"room", [("ce_id", str(i).encode())], b"x" * size)


def test_defaults_follow_the_brief() -> None:
    p = PublisherParams(bootstrap_servers="kafka:9092")
    assert (p.acks, p.kafka_acks, p.enable_idempotence, p.linger_ms, p.compression_type) == (
        "all", "all", False, 5, "gzip")
    assert p.buffer_max_records == 10_000


@pytest.mark.parametrize("acks,expected", [("all", "all"), (-1, "all"), ("1", 1), (1, 1),
                                           ("0", 0), (0, 0)])
def test_acks_forms(acks: Any, expected: Any) -> None:
    assert PublisherParams(bootstrap_servers="k:1", acks=acks).kafka_acks == expected


@pytest.mark.parametrize("bad", [
    {"acks": "2"},
    {"enable_idempotence": True, "acks": 1},
    {"compression_type": "brotli"},
    {"compression_type": "zstd"},  # needs cramjam, which is not installed
    {"buffer_max_records": 0},
    {"retry_jitter": 1.5},
    {"retry_backoff_multiplier": 0.5},
    {"bootstrap_servers": ""},
])
def test_invalid_params_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PublisherParams(**({"bootstrap_servers": "k:1"} | bad))


def test_backoff_grows_is_capped_and_jittered_down() -> None:
    p = PublisherParams(bootstrap_servers="k:1", retry_backoff_ms=100, retry_backoff_max_ms=1000,
                        retry_jitter=0.2)
    assert [p.backoff_s(n, rand=lambda: 0.0) for n in (1, 2, 3, 4, 5, 9)] == [
        0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert p.backoff_s(3, rand=lambda: 1.0) == pytest.approx(0.32)
    for _ in range(100):
        assert 0.8 <= p.backoff_s(20) <= 1.0


async def test_publish_waits_in_the_buffer_while_kafka_is_unreachable() -> None:
    events: list[str] = []
    publisher = KafkaPublisher(PublisherParams(bootstrap_servers=closed_port(),
                                               buffer_max_records=2),
                               on_event=lambda name, fields: events.append(name))
    await publisher.start()
    assert publisher.connected is False
    assert "connect_failed" in events and "disconnected" in events
    acks = [await publisher.publish(record(i)) for i in range(2)]
    assert publisher.buffered == 2
    third = asyncio.create_task(publisher.publish(record(2)))
    await asyncio.sleep(0.05)
    assert not third.done() and "buffer_full" in events
    assert await publisher.stop(timeout=0.1) == 2
    with pytest.raises(PublisherClosedError):
        await third  # a publisher waiting for room is released by stop
    for ack in acks:
        with pytest.raises(PublisherClosedError):
            await ack
    assert publisher.buffered == 0
    assert events[-1] == "stopped"


async def test_records_published_before_start_are_kept() -> None:
    publisher = KafkaPublisher(PublisherParams(bootstrap_servers=closed_port()))
    ack = await publisher.publish(record())
    assert publisher.buffered == 1 and not ack.done()
    assert await publisher.stop(timeout=0) == 1


async def test_oversized_records_are_refused_up_front() -> None:
    publisher = KafkaPublisher(PublisherParams(bootstrap_servers=closed_port(),
                                               max_request_size=1000))
    with pytest.raises(ValueError, match="max_request_size"):
        await publisher.publish(record(size=2000))
    assert publisher.buffered == 0
    await publisher.stop()


async def test_a_failing_hook_does_not_break_the_publisher() -> None:
    def hook(name: str, fields: Any) -> None:
        raise RuntimeError("metrics are down")

    publisher = KafkaPublisher(PublisherParams(bootstrap_servers=closed_port()), on_event=hook)
    await publisher.start()
    await publisher.publish(record())
    assert await publisher.stop(timeout=0) == 1
