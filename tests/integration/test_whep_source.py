"""WhepSource against a real WHEP server, and its errors against a stub.

The real one is Meetecho's ``janus-whep-server`` (npm, Node + Janode), backed by a Janus whose
Streaming plugin serves an RTP mountpoint, inside a network namespace of the test's own
(:mod:`tests.janus_harness`): an RTP sender plays Bob's flagged utterance (Opus) into the
mountpoint, :class:`ingest.whep.WhepSource` pulls it over WHEP. The harness's own Janus has
neither the Streaming plugin nor the WebSocket transport Janode needs, so a second Janus with
just those runs in the same namespace. Skips without root/janus, or without the npm package
(``make whep-server`` installs it into ``.cache/janus-whep-server``, or set
``ROOMWARDEN_WHEP_SERVER_DIR``).

The bad-input cases that a real server cannot be made to produce (401, a 201 that is not SDP)
use an aiohttp stub on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from aiohttp import web
from aiortc.codecs.opus import OpusEncoder
from aiortc.rtp import RtpPacket

from ingest.frames import SpeechSegment
from ingest.ice import restrict_host_addresses
from ingest.whep import WhepError, WhepSource
from tests.integration.test_janus_tap import _cut_flagged_utterance
from tests.janus_harness import (
    _disable_all_but,
    _janus_folders,
    janus_in_netns,
    write_janus_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

WHEP_DIR = Path(os.environ.get(
    "ROOMWARDEN_WHEP_SERVER_DIR",
    Path(__file__).resolve().parents[2] / ".cache" / "janus-whep-server"))
WHEP_JS = WHEP_DIR / "node_modules" / "janus-whep-server" / "src" / "whep.js"
RTP_PORT, WS_PORT, WHEP_PORT, MOUNTPOINT, TOKEN = 5002, 8188, 7090, 7, "s3cret"


def _write_streaming_janus(cfg: Path, addr: str) -> None:
    """Config of the second Janus: Streaming plugin (one Opus RTP mountpoint) + WebSockets."""
    write_janus_config(cfg, addr)
    folders = _janus_folders()
    text = (cfg / "janus.jcfg").read_text()
    text = re.sub(r'(plugins: \{\s*disable = )"[^"]*"', lambda m: m.group(1) + '"' +
                  _disable_all_but(folders["plugins_folder"], ("libjanus_streaming.so",)) + '"',
                  text)
    text = re.sub(r'(transports: \{\s*disable = )"[^"]*"', lambda m: m.group(1) + '"' +
                  _disable_all_but(folders["transports_folder"], ("libjanus_websockets.so",))
                  + '"', text)
    (cfg / "janus.jcfg").write_text(text)
    (cfg / "janus.transport.websockets.jcfg").write_text(
        f'general: {{\n ws = true\n ws_port = {WS_PORT}\n ws_ip = "{addr}"\n wss = false\n}}\n'
        'admin: {\n admin_ws = false\n admin_wss = false\n}\n')
    (cfg / "janus.plugin.streaming.jcfg").write_text(f"""\
general: {{}}
bob: {{
    type = "rtp"
    id = {MOUNTPOINT}
    description = "bob"
    media = ({{ type = "audio" mid = "a" label = "audio" port = {RTP_PORT} pt = 111
               codec = "opus" }})
}}
""")


def _whep_script(path: Path, janus_addr: str) -> None:
    path.write_text(f"""\
import {{ JanusWhepServer }} from '{WHEP_JS}';
const server = new JanusWhepServer({{
  janus: {{ address: 'ws://{janus_addr}:{WS_PORT}' }},
  rest: {{ port: {WHEP_PORT}, basePath: '/whep' }},
}});
await server.start();
server.createEndpoint({{ id: 'bob', mountpoint: {MOUNTPOINT}, token: '{TOKEN}' }});
console.log('WHEP-READY');
""")


def _opus_packets(clip: Path) -> list[bytes]:
    """The clip as 20 ms Opus payloads (aiortc's encoder: what a WebRTC sender would send)."""
    enc, out = OpusEncoder(), []
    with wave.open(str(clip), "rb") as w:
        rate, n = w.getframerate(), w.getframerate() // 50
        pts = 0
        while chunk := w.readframes(n):
            frame = av.AudioFrame(format="s16", layout="mono", samples=len(chunk) // 2)
            frame.planes[0].update(chunk)
            frame.sample_rate, frame.pts, frame.time_base = rate, pts, Fraction(1, rate)
            pts += len(chunk) // 2
            out += enc.encode(frame)[0]
    return out


async def _send_rtp(packets: list[bytes], addr: str) -> None:
    """Play the payloads in real time to the mountpoint's port as RTP (pt 111, 48 kHz clock)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        t0 = loop.time()
        for i, payload in enumerate(packets):
            pkt = RtpPacket(payload_type=111, sequence_number=i & 0xFFFF,
                            timestamp=i * 960, ssrc=0x5EED)
            pkt.payload = payload
            sock.sendto(pkt.serialize(), (addr, RTP_PORT))
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 - loop.time()))
    finally:
        sock.close()


async def _pull(url: str, rtp_addr: str, packets: list[bytes]) -> dict[str, Any]:
    """Runs inside the namespace: subscribe, play the clip into the mountpoint, stop."""
    out: asyncio.Queue[SpeechSegment] = asyncio.Queue()
    res: dict[str, Any] = {}
    for bad_url, token in ((url, "wrong"), (url.replace("/bob", "/nobody"), TOKEN)):
        try:
            await WhepSource(bad_url, room_id="r", speaker_id="s", out=out, token=token).start()
        except WhepError as exc:
            res.setdefault("errors", []).append((exc.status, str(exc)))
    events: list[str] = []
    async with WhepSource(url, room_id="stage-1", speaker_id="bob", out=out, token=TOKEN,
                          on_event=lambda name, _fields: events.append(name)) as src:
        res["resource"] = resource = str(src.resource)
        await _send_rtp(packets, rtp_addr)
        await asyncio.sleep(0.5)  # the last packets through Janus and the jitter buffer
    res["end_reason"] = src.end_reason
    res["events"] = events
    async with aiohttp.ClientSession() as http, \
            http.delete(resource, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        res["second_delete"] = resp.status  # 404: stop() already deleted the resource
    res["segments"] = [out.get_nowait() for _ in range(out.qsize())]
    return res


async def _wait_line(proc: asyncio.subprocess.Process, marker: bytes, timeout_s: float) -> None:
    assert proc.stdout is not None
    seen = b""
    async with asyncio.timeout(timeout_s):
        while marker not in seen:
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError(f"WHEP server exited: {seen.decode(errors='replace')}")
            seen += line


async def test_whep_source_pulls_janus_streaming(tmp_path: Path) -> None:
    if not WHEP_JS.is_file() or shutil.which("node") is None:
        pytest.skip(f"janus-whep-server not installed in {WHEP_DIR} (npm install --prefix "
                    f"{WHEP_DIR} janus-whep-server@1.1.0), or no node")
    clip, speech_start, speech_end = _cut_flagged_utterance(tmp_path)
    packets = _opus_packets(clip)
    async with janus_in_netns("rwwhep") as jn:
        _write_streaming_janus(tmp_path / "j2", jn.janus_addr)
        _whep_script(tmp_path / "whep.mjs", jn.janus_addr)
        janus2 = await asyncio.create_subprocess_exec(
            *jn.exec_args("janus", "-F", str(tmp_path / "j2"), "-o"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(1.0)  # Janus's WebSocket listener; Janode does not retry
        node = await asyncio.create_subprocess_exec(
            *jn.exec_args("node", str(tmp_path / "whep.mjs")), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        restrict_host_addresses([jn.client_addr])
        try:
            await _wait_line(node, b"WHEP-READY", 15)
            url = f"http://{jn.client_addr}:{WHEP_PORT}/whep/endpoint/bob"
            res = await asyncio.wait_for(jn.run_in_netns(_pull, url, jn.janus_addr, packets), 40)
        finally:
            restrict_host_addresses(None)
            for proc in (node, janus2):  # the harness kills what is left in the namespace too
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()

    assert [s for s, _ in res["errors"]] == [403, 404], res["errors"]
    assert "Unauthorized" in res["errors"][0][1] and "Invalid endpoint" in res["errors"][1][1]
    assert res["resource"].startswith(f"http://{jn.client_addr}:{WHEP_PORT}/whep/resource/")
    assert res["end_reason"] == "stopped" and res["second_delete"] == 404
    assert res["events"][0] == "session_started" and res["events"][-1] == "session_ended"
    assert "frames" in res["events"]
    segments: list[SpeechSegment] = res["segments"]
    assert len(segments) == 1, segments
    seg = segments[0]
    print(f"segment: start {seg.start_offset_s:.3f} s, {seg.duration_s:.3f} s long; utterance "
          f"{speech_start:.3f}-{speech_end:.3f} s")
    assert (seg.room_id, seg.speaker_id, seg.seq) == ("stage-1", "bob", 0)
    assert seg.stream_id.startswith("whep:")
    assert speech_end - speech_start <= seg.duration_s <= speech_end - speech_start + 1.0
    # Offsets count from the first audio received, which is the clip's first packet: the
    # segment starts at the utterance, minus the VAD pre-roll (0.3 s) and onset detection.
    assert speech_start - 0.7 <= seg.start_offset_s <= speech_start + 0.2, seg.start_offset_s


# -- errors a real server will not produce on demand: a stub on 127.0.0.1 ---------------------

async def _stub(status: int, body: str, content_type: str, location: str | None) -> web.AppRunner:
    async def post(request: web.Request) -> web.Response:
        headers = {"Location": location} if location else {}
        return web.Response(status=status, text=body, content_type=content_type,
                            headers=headers)

    app = web.Application()
    app.add_routes([web.post("/whep/x", post)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


@pytest.mark.parametrize(("status", "body", "ctype", "location", "expect"), [
    (401, "token expired", "text/plain", None, r"\(401\): token expired"),
    (201, "hello", "text/plain", "/whep/x/1", r"\(201\): the 201 answer is not SDP"),
    (201, "v=0\r\n", "application/sdp", None, r"\(201\): the 201 answer has no Location"),
    (201, "v=0\r\nbogus\r\n", "application/sdp", "/r/1", r"\(201\): unusable SDP answer"),
])
async def test_whep_source_bad_answers(status: int, body: str, ctype: str,
                                       location: str | None, expect: str) -> None:
    runner = await _stub(status, body, ctype, location)
    port = runner.addresses[0][1]
    restrict_host_addresses(["127.0.0.1"])
    try:
        src = WhepSource(f"http://127.0.0.1:{port}/whep/x", room_id="r", speaker_id="s",
                         out=asyncio.Queue(), token="t")
        with pytest.raises(WhepError, match=expect) as info:
            await src.start()
        assert info.value.status == status
        assert src.resource is None and src.session is not None and src.session.ending
    finally:
        restrict_host_addresses(None)
        await runner.cleanup()


async def test_whep_source_unreachable() -> None:
    restrict_host_addresses(["127.0.0.1"])
    try:
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        src = WhepSource(f"http://127.0.0.1:{port}/whep", room_id="r", speaker_id="s",
                         out=asyncio.Queue())
        with pytest.raises(WhepError, match="cannot reach") as info:
            await src.start()
        assert info.value.status == 0
    finally:
        restrict_host_addresses(None)
