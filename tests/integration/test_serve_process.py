"""`roomwarden serve` as a user runs it: a separate process, configured by environment, a WHIP
publisher with the bearer token, /metrics scraped, SIGTERM for a clean stop, and the alert on
Kafka. WebRTC stays on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from alerts.envelope import decode_record
from ingest.files import read_pcm_file
from ingest.ice import restrict_host_addresses
from ingest.whip_client import WhipError, publish_file
from roomwarden.broker import free_port
from roomwarden.readback import end_offsets, read_records
from roomwarden.sample_room import load_sample_room

pytestmark = pytest.mark.integration
TOKEN = "serve-test-token"


def flagged_clip(tmp: Path) -> tuple[Path, str]:
    """The first flagged utterance of the sample room, with a second of silence either side."""
    room = load_sample_room()
    utt = room.expected[0]
    pcm = b"".join(f.pcm for f in read_pcm_file(room.speakers[utt.speaker]))
    audio = np.frombuffer(pcm, np.int16)[int(utt.start_s * 16000): int(utt.end_s * 16000)]
    pad = np.zeros(16000, np.int16)
    path = tmp / "flagged.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.concatenate([pad, audio, pad]).tobytes())
    assert utt.rule_id is not None
    return path, utt.rule_id


async def wait_ready(url: str, proc: asyncio.subprocess.Process, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            assert proc.returncode is None, "roomwarden serve exited early"
            try:
                async with http.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError("roomwarden serve did not become ready")


async def test_serve_process_end_to_end(kafka_broker: str, tmp_path: Path) -> None:
    clip, rule_id = flagged_clip(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMWARDEN_")}
    env.update({
        "ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS": kafka_broker,
        "ROOMWARDEN_HTTP__HOST": "127.0.0.1",
        "ROOMWARDEN_HTTP__PORT": str(port),
        "ROOMWARDEN_HTTP__WHIP_TOKEN": TOKEN,
        "ROOMWARDEN_WEBRTC__ICE_HOST_ADDRESSES": '["127.0.0.1"]',
        "ROOMWARDEN_LOG__FORMAT": "json",
    })
    since = await end_offsets(kafka_broker, "roomwarden.alerts.v1")
    log_path = tmp_path / "serve.log"
    log_file = log_path.open("wb")  # a file, not a pipe: a chatty server never blocks on it
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "roomwarden", "serve", env=env,
        stdout=subprocess.DEVNULL, stderr=log_file)
    url = f"http://127.0.0.1:{port}"
    restrict_host_addresses(["127.0.0.1"])  # this (publishing) side too
    try:
        await wait_ready(url, proc)
        with pytest.raises(WhipError) as refused:
            await publish_file(f"{url}/whip/serve-room/dave", clip, token="wrong")
        assert refused.value.status == 401
        await publish_file(f"{url}/whip/serve-room/dave", clip, token=TOKEN)
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                async with http.get(f"{url}/metrics") as resp:
                    text = await resp.text()
                if "roomwarden_alert_latency_seconds_count 1.0" in text:
                    break
                await asyncio.sleep(0.2)
        assert "roomwarden_alert_latency_seconds_count 1.0" in text
        assert 'roomwarden_whip_offers_rejected_total{reason="unauthorized"} 1.0' in text
    finally:
        restrict_host_addresses(None)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
        log_file.close()
    assert proc.returncode == 0, log_path.read_text()[-2000:]
    records = await read_records(kafka_broker, "roomwarden.alerts.v1", since)
    alerts = [decode_record(list(r.headers), r.value)[1] for r in records]
    alerts = [a for a in alerts if a["room_id"] == "serve-room"]
    assert [(a["speaker_id"], a["rule_id"]) for a in alerts] == [("dave", rule_id)]
