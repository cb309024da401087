"""One measurement of :mod:`bench.ingest_janus`, in a child process of its own.

    python -m bench.ingest_probe janus 8 --window 15     # prints "RESULT {json}"

A fresh process per (path, speaker count) makes its RSS growth its own, not memory freed by an
earlier run. It starts the receiver (a :class:`ingest.janus_videoroom.VideoRoomTap` on a Janus
VideoRoom in a network namespace of its own, or a :class:`ingest.whip.WhipEndpoint` on
127.0.0.1), then the speakers in a further process (:mod:`bench.ingest_speakers`), waits until
every subscription/session has started plus 2 s, and measures one window: this process's CPU
(``time.process_time``, all threads), the audio seconds received, RSS growth since before the
speakers started, and Janus's and the speakers' CPU from ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ingest.frames import SpeechSegment
from ingest.ice import restrict_host_addresses
from ingest.janus_api import JanusSession
from ingest.janus_videoroom import VIDEOROOM, VideoRoomTap
from ingest.vad import VadParams
from ingest.whip import WhipEndpoint

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "roomwarden" / "samples"
SETTLE_S = 2.0
SETUP_S = 15.0
"""Time allowed for all speakers to connect and be subscribed before the window starts."""
ROOM = 4242
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class IngestResult:
    """One (path, speaker count) measurement; CPU in seconds over the window."""

    mode: str
    speakers: int
    streams: int
    window_s: float
    audio_s: float
    cpu_s: float
    rss_growth_mib: float
    segments: int
    speakers_cpu_s: float
    janus_cpu_s: float | None = None
    error: str = ""

    @property
    def cpu_per_stream_s(self) -> float:
        """Receiver CPU-seconds per second of received audio."""
        return self.cpu_s / self.audio_s if self.audio_s else float("nan")


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _clips(directory: Path, seconds: float) -> list[str]:
    """The sample voices' first ``seconds`` (speech and pauses, as in a room)."""
    paths = []
    for src in sorted(SAMPLES.glob("speaker_*.wav")):
        with wave.open(str(src), "rb") as w:
            params, frames = w.getparams(), w.readframes(round(seconds * w.getframerate()))
        dest = directory / src.name
        with wave.open(str(dest), "wb") as out:
            out.setparams(params)
            out.writeframes(frames)
        paths.append(str(dest))
    return paths


class _Meter:
    """Counts the sessions the receiver's event hook reports started; ``all`` at ``n``."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.started = 0
        self.all = asyncio.Event()

    def on_event(self, name: str, fields: dict[str, Any]) -> None:
        if name == "session_started":
            self.started += 1
            if self.started >= self.n:
                self.all.set()


async def _measure(mode: str, n: int, window_s: float, meter: _Meter, argv: list[str],
                   out: asyncio.Queue[SpeechSegment], audio_s: Callable[[], float],
                   janus_pid: int | None) -> IngestResult:
    """Start the speakers, wait for all streams, measure one window, stop the speakers.

    ``audio_s`` sums the open sessions' received seconds (``StreamSession.audio_s``): exact,
    where the ``frames`` events come in whole seconds per stream.
    """
    segments = 0

    async def drain() -> None:
        nonlocal segments
        while True:
            await out.get()
            segments += 1

    drainer = asyncio.create_task(drain())
    rss0 = _rss_mib()
    log = tempfile.TemporaryFile()
    proc = await asyncio.create_subprocess_exec(*argv, cwd=REPO, stdout=log, stderr=log)
    try:
        waits = [asyncio.ensure_future(meter.all.wait()), asyncio.ensure_future(proc.wait())]
        await asyncio.wait(waits, timeout=SETUP_S, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        streams = meter.started
        await asyncio.sleep(SETTLE_S)
        c0, a0, s0 = time.process_time(), audio_s(), segments
        p0, j0 = _proc_cpu_s(proc.pid), _proc_cpu_s(janus_pid) if janus_pid else 0.0
        await asyncio.sleep(window_s)
        cpu, audio = time.process_time() - c0, audio_s() - a0
        pcpu, jcpu = _proc_cpu_s(proc.pid) - p0, (_proc_cpu_s(janus_pid) - j0
                                                   if janus_pid else None)
        rss = _rss_mib() - rss0
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
        drainer.cancel()
    log.seek(0)
    error = "" if streams == n else f"{streams}/{n} streams started; speakers said: " \
        f"{log.read().decode(errors='replace')[-300:]!r}"
    return IngestResult(mode, n, streams, window_s, audio, cpu, rss, segments - s0, pcpu, jcpu,
                        error)


async def _whip_child(n: int, window_s: float, clips: list[str]) -> IngestResult:
    restrict_host_addresses(["127.0.0.1"])
    out: asyncio.Queue[SpeechSegment] = asyncio.Queue()
    meter = _Meter(n)
    whip = WhipEndpoint(out, token=None, vad=VadParams(), max_sessions=n + 8,
                        on_event=meter.on_event)
    app = web.Application()
    whip.add_to(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        argv = [sys.executable, "-m", "bench.ingest_speakers", "whip", f"http://127.0.0.1:{port}",
                *clips, "--count", str(n), "--ice-host", "127.0.0.1"]
        # WhipEndpoint has no public session list; a benchmark may look inside.
        return await _measure("whip", n, window_s, meter, argv, out,
                              lambda: sum(s.audio_s for s in whip._sessions.values()), None)
    finally:
        await whip.close()
        await runner.cleanup()


async def _janus_scenario(jn: Any, n: int, window_s: float, clips: list[str],
                          janus_pid: int | None) -> IngestResult:
    """Runs on the namespace's thread: room, tap, speakers (in the namespace too), window."""
    import aiohttp

    out: asyncio.Queue[SpeechSegment] = asyncio.Queue()
    meter = _Meter(n)
    async with aiohttp.ClientSession() as http, \
            await JanusSession.create(http, jn.base_url) as janus:
        admin = await janus.attach(VIDEOROOM)
        await admin.send({"request": "create", "room": ROOM, "publishers": n + 2,
                          "audiocodec": "opus"})
        async with VideoRoomTap(janus, ROOM, out, poll_interval_s=0.5,
                                on_event=meter.on_event) as tap:
            argv = jn.exec_args(sys.executable, "-m", "bench.ingest_speakers", "janus",
                                jn.base_url, str(ROOM), *clips, "--count", str(n),
                                "--ice-host", jn.client_addr)
            result = await _measure(
                "janus", n, window_s, meter, argv, out,
                lambda: sum(s.session.audio_s for s in tap.subscriptions.values()), janus_pid)
        await admin.send({"request": "destroy", "room": ROOM})
    return result


def _janus_pid(ns: str) -> int | None:
    """Janus's pid: the process named ``janus`` in namespace ``ns``."""
    res = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                         check=False)
    for pid in res.stdout.split():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "janus":
                return int(pid)
    return None


async def _janus_child(n: int, window_s: float, clips: list[str]) -> IngestResult:
    import pytest

    from tests.janus_harness import janus_in_netns

    try:
        async with janus_in_netns("rwbench", debug_level=2) as jn:
            restrict_host_addresses([jn.client_addr])
            janus_pid = await asyncio.to_thread(_janus_pid, jn.ns)
            return await jn.run_in_netns(_janus_scenario, jn, n, window_s, clips, janus_pid)
    except pytest.skip.Exception as exc:
        return IngestResult("janus", n, 0, window_s, 0, 0, 0, 0, 0, None, str(exc))


def _child(mode: str, n: int, window_s: float) -> None:
    from roomwarden.logs import configure_logging

    configure_logging("error")
    with tempfile.TemporaryDirectory() as tmp:
        clips = _clips(Path(tmp), SETUP_S + SETTLE_S + window_s + 5)
        run = _janus_child if mode == "janus" else _whip_child
        result = asyncio.run(run(n, window_s, clips))
    print("RESULT " + json.dumps(asdict(result)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("janus", "whip"))
    parser.add_argument("speakers", type=int)
    parser.add_argument("--window", type=float, default=15.0, help="measured seconds")
    args = parser.parse_args()
    _child(args.mode, args.speakers, args.window)


if __name__ == "__main__":
    main()
