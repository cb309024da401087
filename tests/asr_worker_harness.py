"""Driving ``roomwarden worker asr`` in tests: sample segments and bad records to feed it, the
worker as a subprocess, a follower of its output topics, the group's committed offsets."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from alerts.envelope import KafkaRecord, decode_record
from alerts.publisher import KafkaPublisher, PublisherParams
from alerts.segment_record import DLQ_OFFSET_HEADER, DLQ_PARTITION_HEADER, METADATA_HEADER
from ingest.files import file_segments
from ingest.frames import SpeechSegment

SAMPLES = Path(__file__).resolve().parents[1] / "roomwarden" / "samples"
SESSION_TIMEOUT_MS = 6000  # Tansu: a restarted member waits ~1.5 session timeouts to join


async def sample_segments(prefix: str) -> list[SpeechSegment]:
    """The sample room's 18 utterances (a room per speaker) plus alice's first 6 again in a
    room of their own: 24 distinct segments spread over the partitions."""
    segments: list[SpeechSegment] = []
    for wav in sorted(SAMPLES.glob("speaker_*.wav")):
        speaker = wav.stem.removeprefix("speaker_")
        async for seg in file_segments(wav, f"{prefix}-{speaker}", speaker):
            segments.append(seg)
    alice = SAMPLES / "speaker_alice.wav"
    async for seg in file_segments(alice, f"{prefix}-encore", "alice"):
        if seg.seq < 6:
            segments.append(seg)
    return segments


def with_metadata(record: KafkaRecord, **changes: object) -> KafkaRecord:
    meta = json.loads(dict(record.headers)[METADATA_HEADER])
    meta.update(changes)
    raw = json.dumps(meta).encode()  # a careless producer: NaN goes out as NaN
    return dataclasses.replace(
        record, headers=[(k, raw if k == METADATA_HEADER else v) for k, v in record.headers])


def bad_records(good: KafkaRecord) -> list[tuple[KafkaRecord, str]]:
    """The four kinds of bad input of the issue, each with the reason it must be rejected for."""
    eight_khz = with_metadata(good, sample_rate=8000)
    eight_khz = dataclasses.replace(eight_khz, headers=[
        (k, b"audio/L16;rate=8000;channels=1" if k == "content-type" else v)
        for k, v in eight_khz.headers])
    start = json.loads(dict(good.headers)[METADATA_HEADER])["start_offset_s"]
    return [
        (eight_khz, "wrong_sample_rate"),
        (dataclasses.replace(good, value=b""), "empty_audio"),
        (with_metadata(good, start_offset_s=float("nan")), "non_finite"),
        (with_metadata(good, end_offset_s=start + 500.0), "absurd_duration"),
    ]


async def produce(bootstrap: str, records: list[KafkaRecord]) -> list[tuple[int, int]]:
    """Publish in order; ``(partition, offset)`` of each."""
    async with KafkaPublisher(PublisherParams(bootstrap_servers=bootstrap)) as publisher:
        acks = [await publisher.publish(r) for r in records]
        return [tuple(a) for a in await asyncio.gather(*acks)]  # type: ignore[misc]


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offsets (partitions with none left out). Reads them without joining
    the group (aiokafka's admin OffsetFetch for a whole group is garbled by Tansu)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        out = {}
        for p in sorted(consumer.partitions_for_topic(topic) or ()):
            offset = await consumer.committed(TopicPartition(topic, p))
            if offset is not None:
                out[p] = offset
        return out
    finally:
        await consumer.stop()


class TopicWatcher:
    """Follows a topic from the start (no group) and keeps every record, duplicates included."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.records: list[tuple[list[tuple[str, bytes]], bytes]] = []
        # A short fetch wait: Tansu holds a fetch for the whole wait even when records arrive.
        self._consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                          enable_auto_commit=False, auto_offset_reset="earliest",
                                          fetch_max_wait_ms=20)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TopicWatcher:
        await self._consumer.start()
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()

    async def _follow(self) -> None:
        while True:
            for batch in (await self._consumer.getmany(timeout_ms=100)).values():
                self.records.extend((list(r.headers), r.value or b"") for r in batch)

    def transcript_segment_ids(self) -> list[str]:
        return [decode_record(h, v)[1]["segment_id"] for h, v in self.records]


class WorkerProcess:
    """``roomwarden worker asr`` (or another ``roomwarden`` command, e.g. ``("worker",
    "policy")`` or ``("serve",)``) as a user runs it: its own process, configured by
    environment, JSON logs to a file (a file, not a pipe: a chatty worker never blocks on it)."""

    def __init__(self, env: dict[str, str], log_path: Path,
                 command: tuple[str, ...] = ("worker", "asr")) -> None:
        self.env, self.log_path, self.command = env, log_path, command
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> WorkerProcess:
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Never leave a worker behind (a failed test would leave it retrying forever)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def start(self) -> None:
        exe = Path(sys.executable).with_name("roomwarden")
        argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "roomwarden"]
        with self.log_path.open("ab") as log_file:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, *self.command, env=self.env, stdout=subprocess.DEVNULL,
                stderr=log_file)

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text("utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("event") == name:
                    out.append(event)
        return out

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text("utf-8", errors="replace")[-chars:]


def worker_env(bootstrap: str, topics: dict[str, str], group: str, metrics_port: int,
               instance: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMWARDEN_")}
    env.update({
        "ROOMWARDEN_INSTANCE": instance,
        "ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "ROOMWARDEN_KAFKA__TRANSCRIPTS_TOPIC": topics["transcripts"],
        "ROOMWARDEN_ASR_WORKER__SEGMENTS_TOPIC": topics["segments"],
        "ROOMWARDEN_ASR_WORKER__DLQ_TOPIC": topics["dlq"],
        "ROOMWARDEN_ASR_WORKER__GROUP_ID": group,
        # A poll of 12 segments (~35 s of speech) decoded as several packed windows, one after
        # the other: the first windows' transcripts are on Kafka while the rest still decode,
        # which is the moment to kill the worker. (With the default packing a whole poll
        # tends to finish in one decode, and publish-to-commit lasts milliseconds.)
        "ROOMWARDEN_ASR_WORKER__MAX_BATCH": "12",
        "ROOMWARDEN_ASR__PACK_WINDOW_S": "10",
        "ROOMWARDEN_ASR__PACK_MAX_WINDOWS": "1",
        "ROOMWARDEN_ASR_WORKER__SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "ROOMWARDEN_ASR_WORKER__HEARTBEAT_INTERVAL_MS": "1000",
        "ROOMWARDEN_ASR_WORKER__METRICS_HOST": "127.0.0.1",
        "ROOMWARDEN_ASR_WORKER__METRICS_PORT": str(metrics_port),
        "ROOMWARDEN_LOG__FORMAT": "json",
    })
    return env


async def wait_for(check: Callable[[], bool], within_s: float, what: str,
                   proc: WorkerProcess) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return
        assert proc.proc is not None
        if proc.proc.returncode is not None:
            raise AssertionError(f"worker exited ({proc.proc.returncode}) before {what}:\n"
                                 f"{proc.log_tail()}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}:\n{proc.log_tail()}")


def dlq_positions(watcher: TopicWatcher) -> list[tuple[bytes, bytes]]:
    return [(dict(h)[DLQ_PARTITION_HEADER], dict(h)[DLQ_OFFSET_HEADER])
            for h, _ in watcher.records]
