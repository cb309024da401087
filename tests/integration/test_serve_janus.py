"""``roomwarden serve --janus`` as a process, end to end, inside one network namespace.

Everything runs in a namespace of the test's own (:mod:`tests.janus_harness`): Janus, the
embedded Tansu broker (spawned from the namespace thread, so it listens on the namespace's
loopback), ``roomwarden serve --janus`` (configured by environment: Kafka, ICE host address,
AudioBridge room, notices on), a TextRoom host participant, and ``roomwarden room speak``
playing the sample room's first flagged utterance into VideoRoom 1234. The test reads the alert
back from Kafka inside the namespace, checks that the host got the in-room notice, then
SIGTERMs serve, which must exit 0. Skips where the harness cannot run (not root, no Janus).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from alerts.envelope import decode_record
from alerts.room_notice import TEXTROOM
from ingest.ice import restrict_host_addresses
from ingest.janus_api import JanusSession
from roomwarden.broker import LocalBroker
from roomwarden.readback import end_offsets, read_records
from tests.integration.test_serve_process import flagged_clip
from tests.janus_harness import JanusNetns, janus_in_netns

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

ROOM = 1234  # a VideoRoom and an AudioBridge room of the harness's Janus
PORT = 18080  # serve's HTTP port on the namespace's loopback (nothing else listens there)
ALERTS = "roomwarden.alerts.v1"


def _lead_in(clip: Path, seconds: float) -> Path:
    """``clip`` after ``seconds`` of silence: the tap subscribes to a new publisher at its next
    participant poll, so the first instants of a stream are not heard (by design)."""
    with wave.open(str(clip), "rb") as src:
        params, frames = src.getparams(), src.readframes(src.getnframes())
    out = clip.with_name("lead-in.wav")
    with wave.open(str(out), "wb") as w:
        w.setparams(params)
        w.writeframes(b"\0" * (round(seconds * params.framerate) * params.sampwidth) + frames)
    return out


async def _start_broker() -> LocalBroker:
    broker = LocalBroker(start_timeout=20)
    await broker.start()
    return broker


async def _host_join(base_url: str) -> dict[str, Any]:
    """Create TextRoom ROOM and join it as ``host`` over a data channel (see
    test_room_notice); the returned context is only ever used on the namespace loop."""
    ctx: dict[str, Any] = {"inbox": asyncio.Queue()}
    ctx["http"] = aiohttp.ClientSession()
    try:
        await _host_setup(ctx, base_url)
    except BaseException:
        await _host_close(ctx)
        raise
    return ctx


async def _host_setup(ctx: dict[str, Any], base_url: str) -> None:
    ctx["janus"] = janus = await JanusSession.create(ctx["http"], base_url)
    handle = await janus.attach(TEXTROOM)
    await handle.send({"request": "create", "room": ROOM, "description": "stage"})
    offer = (await handle.send({"request": "setup"})).jsep
    assert offer is not None
    ctx["pc"] = pc = RTCPeerConnection()
    await pc.setRemoteDescription(RTCSessionDescription(**offer))
    channel = pc.createDataChannel("JanusDataChannel")
    opened = asyncio.Event()
    channel.on("open", opened.set)
    channel.on("message", lambda m: ctx["inbox"].put_nowait(json.loads(m)))
    await pc.setLocalDescription(await pc.createAnswer())
    await handle.send({"request": "ack"}, jsep={"type": "answer",
                                                 "sdp": pc.localDescription.sdp})
    await asyncio.wait_for(opened.wait(), 10)
    channel.send(json.dumps({"textroom": "join", "transaction": secrets.token_hex(4),
                             "room": ROOM, "username": "host", "display": "The Host"}))
    while (await asyncio.wait_for(ctx["inbox"].get(), 10)).get("textroom") != "success":
        pass


async def _host_notice(ctx: dict[str, Any], within_s: float) -> dict[str, Any]:
    """The first chat message someone else posts into the room."""
    async with asyncio.timeout(within_s):
        while True:
            msg = await ctx["inbox"].get()
            if msg.get("textroom") == "message" and msg.get("from") != "host":
                return dict(msg)


async def _host_close(ctx: dict[str, Any]) -> None:
    if "pc" in ctx:
        await ctx["pc"].close()
    if "janus" in ctx:
        await ctx["janus"].destroy()
    await ctx["http"].close()


async def _health(within_s: float) -> dict[str, Any]:
    """serve's /healthz once it taps the VideoRoom and the AudioBridge room."""
    deadline = time.monotonic() + within_s
    body: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{PORT}/healthz") as resp:
                    body = await resp.json()
                if body.get("janus_rooms") == [ROOM] and \
                        body.get("janus_audiobridge_rooms") == [ROOM]:
                    return body
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)
    raise TimeoutError(f"serve not tapping room {ROOM} in time: {body}")


async def _metrics() -> str:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{PORT}/metrics") as resp:
        return await resp.text()


async def _alerts(bootstrap: str, since: dict[int, int], within_s: float) -> list[Any]:
    deadline = time.monotonic() + within_s
    while True:
        records = await read_records(bootstrap, ALERTS, since)
        if records or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.5)


async def _speak(jn: JanusNetns, clip: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *jn.exec_args(sys.executable, "-m", "roomwarden", "room", "speak", "--janus",
                      jn.base_url, "--room", str(ROOM), "--display", "Dave D.",
                      "--ice-host", jn.client_addr, str(clip)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, (out + err).decode()


async def test_serve_janus_process_alerts_and_notifies(tmp_path: Path) -> None:
    clip, rule_id = flagged_clip(tmp_path)
    clip = _lead_in(clip, 2.0)
    t0 = time.monotonic()
    async with janus_in_netns("rwsrv") as jn:
        restrict_host_addresses([jn.client_addr])  # the host participant's ICE (this process)
        broker = await jn.run_in_netns(_start_broker)
        host: dict[str, Any] | None = None
        log_path = tmp_path / "serve.log"
        log_file = log_path.open("wb")
        proc: asyncio.subprocess.Process | None = None
        try:
            bootstrap = broker.bootstrap_servers
            since = await jn.run_in_netns(end_offsets, bootstrap, ALERTS)
            host = await jn.run_in_netns(_host_join, jn.base_url)
            env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMWARDEN_")}
            env.update({
                "ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
                "ROOMWARDEN_HTTP__HOST": "127.0.0.1",
                "ROOMWARDEN_HTTP__PORT": str(PORT),
                "ROOMWARDEN_WEBRTC__ICE_HOST_ADDRESSES": json.dumps([jn.client_addr]),
                "ROOMWARDEN_JANUS__ROOMS": f"[{ROOM}]",
                "ROOMWARDEN_JANUS__AUDIOBRIDGE_ROOMS": f"[{ROOM}]",
                "ROOMWARDEN_JANUS__POLL_INTERVAL_S": "0.5",
                "ROOMWARDEN_NOTICES__ENABLED": "true",
                "ROOMWARDEN_NOTICES__MIN_SEVERITY": "low",  # the sample's category is medium
                "ROOMWARDEN_LOG__FORMAT": "json",
            })
            proc = await asyncio.create_subprocess_exec(
                *jn.exec_args(sys.executable, "-m", "roomwarden", "serve", "--janus",
                              jn.base_url),
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file)
            health = await jn.run_in_netns(_health, 40.0)
            assert health["ok"] and health["janus_connected"]
            code, out = await _speak(jn, clip)
            assert code == 0, out
            records = await jn.run_in_netns(_alerts, bootstrap, since, 20.0)
            notice = await jn.run_in_netns(_host_notice, host, 15.0)
            metrics = await jn.run_in_netns(_metrics)
        except BaseException:
            print(jn.log_tail())
            print(log_path.read_text()[-4000:])
            raise
        finally:
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            log_file.close()
            if host is not None:
                await jn.run_in_netns(_host_close, host)
            await jn.run_in_netns(broker.stop)
            restrict_host_addresses(None)

    assert proc is not None and proc.returncode == 0, log_path.read_text()[-3000:]
    alerts = [decode_record(list(r.headers), r.value)[1] for r in records]
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    assert (alert["room_id"], alert["speaker_name"], alert["rule_id"]) == \
        (str(ROOM), "Dave D.", rule_id)
    assert alert["speaker_id"].isdigit()  # the publisher's Janus participant id
    assert notice["room"] == ROOM
    assert notice["text"].startswith("RoomWarden: Dave D. may have broken the room rules ("), \
        notice
    assert 'roomwarden_room_notices_total{outcome="sent"} 1.0' in metrics
    assert "roomwarden_janus_connected 1.0" in metrics
    assert time.monotonic() - t0 < 60
