"""A real browser speaks in a real Janus room; the alert lands on Kafka under its display name.

Headless Chromium opens ``tests/browser/speaker.html`` (Debian's ``janus.js`` + ``adapter.js``),
joins a VideoRoom as a publisher and publishes its fake microphone, a WAV holding one flagged
utterance of the sample room. RoomWarden's :class:`VideoRoomTap` subscribes to it, and the real
pipeline (tiny.en, the default rule pack, the session's Kafka-protocol broker) turns the speech
into an alert naming the participant.

Where things run: Janus, the page server, Chromium and the tap live in a network namespace of
the test's own (:mod:`tests.janus_harness`): WebRTC and HTTP there can only reach
``10.213.X.*``. The tap runs on the namespace thread's loop and hands each segment over to the
pipeline's queue on the test's loop; only the pipeline (root namespace) talks to Kafka on
127.0.0.1. Skips, saying why, without root, ``ip netns``, Janus, Chromium or the JS packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alerts.envelope import decode_record
from alerts.schemas import validate
from ingest.frames import SpeechSegment
from ingest.ice import restrict_host_addresses
from ingest.janus_api import JanusHandle, JanusSession
from ingest.janus_videoroom import VIDEOROOM, VideoRoomTap
from policy.frames import Alert
from roomwarden.app import running_pipeline
from roomwarden.readback import end_offsets, read_records
from roomwarden.settings import Settings
from tests import chromium_speaker, janus_harness
from tests.chromium_speaker import ChromiumSpeaker, PageServer, make_fake_mic_wav
from tests.janus_harness import janus_in_netns

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOM = 4711
DISPLAY = "Bøb (Chromium)"


class NetnsTap:
    """The room and its tap, on the namespace thread; segments forwarded to ``sink``.

    :meth:`start` and :meth:`stop` must run on the namespace loop (``jn.run_in_netns``); ``sink``
    belongs to ``sink_loop`` (the test's loop) and is only touched there.
    """

    def __init__(self, base_url: str, room: int, sink: asyncio.Queue[SpeechSegment],
                 sink_loop: asyncio.AbstractEventLoop) -> None:
        self.base_url = base_url
        self.room = room
        self.sink = sink
        self.sink_loop = sink_loop
        self.segments: list[SpeechSegment] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.tap: VideoRoomTap | None = None
        self._http: aiohttp.ClientSession | None = None
        self._janus: JanusSession | None = None
        self._admin: JanusHandle | None = None
        self._out: asyncio.Queue[SpeechSegment] | None = None
        self._forwarder: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        self._janus = await JanusSession.create(self._http, self.base_url)
        self._admin = await self._janus.attach(VIDEOROOM)
        await self._admin.send({"request": "create", "room": self.room, "publishers": 4,
                                "audiocodec": "opus", "description": "roomwarden browser test"})
        self._out = asyncio.Queue()
        self.tap = VideoRoomTap(self._janus, self.room, self._out, poll_interval_s=0.3,
                                on_event=lambda name, fields: self.events.append((name, fields)))
        await self.tap.start()
        self._forwarder = asyncio.create_task(self._forward(self._out))

    async def _forward(self, out: asyncio.Queue[SpeechSegment]) -> None:
        while True:
            segment = await out.get()
            self.segments.append(segment)
            handed = asyncio.run_coroutine_threadsafe(self.sink.put(segment), self.sink_loop)
            await asyncio.wrap_future(handed)
            out.task_done()

    async def displays(self) -> dict[str, str]:
        return dict(self.tap.displays) if self.tap is not None else {}

    async def stop(self) -> None:
        """Close the tap (flushing open segments), forward what is left, destroy the room."""
        if self.tap is not None:
            await self.tap.close()
        if self._out is not None and self._forwarder is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._out.join(), 5)
            self._forwarder.cancel()
            await asyncio.gather(self._forwarder, return_exceptions=True)
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await self._admin.send({"request": "destroy", "room": self.room})
        if self._janus is not None:
            await self._janus.destroy()
        if self._http is not None:
            await self._http.close()


def _skip_reason() -> str | None:
    for check in (janus_harness.unavailable_reason, chromium_speaker.unavailable_reason):
        if reason := check():
            return reason
    return None


async def test_browser_speaker_alert_names_the_participant(kafka_broker: str,
                                                           tmp_path: Path) -> None:
    if reason := _skip_reason():  # before loading the model
        pytest.skip(f"browser speaker: {reason}")
    t0 = time.monotonic()
    mic = make_fake_mic_wav(tmp_path)
    settings = Settings()
    settings.kafka.bootstrap_servers = kafka_broker
    topic = settings.kafka.alerts_topic
    since = await end_offsets(kafka_broker, topic)
    delivered: list[tuple[Alert, float | None, float]] = []
    alerted = asyncio.Event()

    def on_alert(alert: Alert, latency: float | None) -> None:
        delivered.append((alert, latency, time.monotonic()))
        alerted.set()

    async with running_pipeline(settings, on_alert=on_alert) as running, \
            janus_in_netns("rwbrowser") as jn:
        # aioice is process-global: the tap offers only the namespace's client address.
        restrict_host_addresses([jn.client_addr])
        tap = NetnsTap(jn.base_url, ROOM, running.pipeline.segments, asyncio.get_running_loop())
        page = PageServer(jn.client_addr)
        try:
            await jn.run_in_netns(tap.start)
            await jn.run_in_netns(page.start)
            url = page.page_url(jn.base_url, ROOM, DISPLAY)
            async with ChromiumSpeaker(jn.exec_args(), url, mic.path, page.origin) as browser:
                _, joined = await browser.wait_for(r"^joined room=\d+ id=(\d+)", 20)
                # The fake microphone plays the file from when getUserMedia opened it.
                mic_open, _ = await browser.wait_for(r"^local track audio", 20)
                await browser.wait_for(r"^webrtc up", 20)
                try:
                    await asyncio.wait_for(alerted.wait(), mic.speech_end_s + 20)
                except TimeoutError:
                    raise AssertionError(
                        f"no alert; segments {tap.segments}, tap events {tap.events}\n"
                        f"{browser.report()}\njanus:\n{jn.log_tail()}") from None
                displays = await jn.run_in_netns(tap.displays)
        finally:
            await jn.run_in_netns(page.stop)
            await jn.run_in_netns(tap.stop)
            restrict_host_addresses(None)
        await running.pipeline.drain()

    # The participant id the tap knows the browser by (its display name's key), as the page saw it.
    speaker_ids = [sid for sid, name in displays.items() if name == DISPLAY]
    assert speaker_ids == [joined.group(1)], (displays, joined.group(0))
    feed = speaker_ids[0]
    assert len(tap.segments) == 1, tap.segments  # the phrase, spoken once, one segment
    seg = tap.segments[0]
    assert (seg.room_id, seg.speaker_id, seg.speaker_name) == (str(ROOM), feed, DISPLAY)
    assert len(delivered) == 1, [a.rule_id for a, _, _ in delivered]
    alert, latency, acked_at = delivered[0]
    assert latency is not None and 0 < latency < 15, latency

    records = await read_records(kafka_broker, topic, since)
    events = []
    for rec in records:
        attrs, data = decode_record(list(rec.headers), rec.value)
        validate("alert", data)
        if data["room_id"] == str(ROOM):  # the session's broker is shared with other tests
            assert rec.key == str(ROOM).encode()
            assert attrs["id"] == data["alert_id"]
            events.append(data)
    assert len(events) == 1, events
    event = events[0]
    assert event["speaker_name"] == DISPLAY
    assert event["speaker_id"] == feed
    assert event["room_id"] == str(ROOM)
    assert (event["category"], event["rule_id"]) == (mic.category, mic.rule_id), event
    assert event["alert_id"] == alert.alert_id

    # From the browser's side, approximately: the fake microphone's clock starts about when
    # getUserMedia resolved (console line read on stderr), so the phrase ended near
    # mic_open + speech_end_s.
    spoken_end = mic_open + mic.speech_end_s
    print(f"browser speaker: end of speech -> alert acked {latency:.2f} s "
          f"(from the tap's last voiced frame; ~{acked_at - spoken_end:.2f} s from the "
          f"browser's microphone clock; test {time.monotonic() - t0:.1f} s)")
