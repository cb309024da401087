"""A real browser speaker for end-to-end tests: headless Chromium in a Janus VideoRoom.

Three pieces, used with :mod:`tests.janus_harness` (everything WebRTC/HTTP stays inside the
test's network namespace):

* :func:`make_fake_mic_wav` cuts a flagged utterance out of the sample room and writes the
  48 kHz WAV Chromium plays as its microphone (``--use-file-for-fake-audio-capture``).
* :class:`PageServer` serves ``tests/browser/speaker.html`` + ``speaker.js`` and Debian's
  ``janus.js`` / ``adapter.js``. :meth:`PageServer.start` must run on the namespace thread
  (``await jn.run_in_netns(server.start)``), so its socket lives in the namespace.
* :class:`ChromiumSpeaker` starts headless Chromium through ``ip netns exec`` pointed at the
  page, follows the page's ``[speaker]`` console lines on stderr and stops it.

:func:`unavailable_reason` says why this cannot run here (the caller ``pytest.skip``\\ s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import av
import numpy as np
from aiohttp import web

BROWSER_DIR = Path(__file__).resolve().parent / "browser"
SAMPLES = Path(__file__).resolve().parents[1] / "roomwarden" / "samples"
JANUS_JS = Path("/usr/share/javascript/janus-gateway/janus.js")  # libjs-janus-gateway
ADAPTER_JS = Path("/usr/share/javascript/webrtc-adapter/adapter.js")  # libjs-webrtc-adapter
FAKE_MIC_RATE = 48_000
CONSOLE_TAG = "[speaker] "

# Debian's /usr/bin/chromium is a shell wrapper that adds flags from /etc/chromium.d (remote
# extensions on, Google API keys in the environment); run the browser binary itself.
_CHROMIUM_PATHS = ("/usr/lib/chromium/chromium",)


def chromium_binary() -> str | None:
    for path in _CHROMIUM_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


def unavailable_reason() -> str | None:
    """Why a browser speaker cannot run here, or None (Janus itself: the harness checks)."""
    if os.geteuid() != 0:
        return "needs root (network namespace for Janus and Chromium)"
    if chromium_binary() is None:
        return "chromium not installed (make system-deps / apt-get install -y chromium)"
    for path, pkg in ((JANUS_JS, "libjs-janus-gateway"), (ADAPTER_JS, "libjs-webrtc-adapter")):
        if not path.is_file():
            return f"{path} missing (apt-get install -y {pkg})"
    return None


# --- the fake microphone -----------------------------------------------------------------------

@dataclass(frozen=True)
class FakeMic:
    """The WAV Chromium plays as its microphone, and where the speech is in it."""

    path: Path
    speech_start_s: float
    speech_end_s: float
    text: str
    category: str
    rule_id: str


def make_fake_mic_wav(dest: Path, *, speaker: str = "bob", lead_s: float = 4.0,
                      tail_s: float = 30.0) -> FakeMic:
    """Write ``speaker``'s first flagged utterance of the sample room as a 48 kHz mono WAV.

    ``lead_s`` of silence come first: Chromium starts playing the file when the page opens the
    microphone, before it has even published, and the tap must have subscribed before the
    speech starts. Chromium loops the file unless told ``%noloop`` (which
    :class:`ChromiumSpeaker` does); ``tail_s`` of silence after the speech keep the phrase
    spoken once even where that suffix were ignored.
    """
    script = json.loads((SAMPLES / "room.json").read_text())
    utt = next(u for u in script["utterances"] if u["speaker"] == speaker and u["expect"])
    with wave.open(str(SAMPLES / script["speakers"][speaker]), "rb") as src:
        rate = src.getframerate()
        if (src.getnchannels(), src.getsampwidth()) != (1, 2):
            raise ValueError(f"{src}: expected mono s16")
        begin = round(utt["start_s"] * rate)
        src.setpos(begin)
        speech = np.frombuffer(src.readframes(round(utt["end_s"] * rate) - begin), "<i2")
    speech48 = _resample(speech, rate, FAKE_MIC_RATE)
    pcm = np.concatenate([np.zeros(round(lead_s * FAKE_MIC_RATE), "<i2"), speech48,
                          np.zeros(round(tail_s * FAKE_MIC_RATE), "<i2")])
    path = dest / f"{speaker}_flagged_48k.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(FAKE_MIC_RATE)
        out.writeframes(pcm.tobytes())
    return FakeMic(path, lead_s, lead_s + len(speech48) / FAKE_MIC_RATE, utt["text"],
                   utt["expect"]["category"], utt["expect"]["rule_id"])


def _resample(pcm: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    """Mono s16 ``rate`` → ``to_rate`` with libswresample (PyAV)."""
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
    frames = resampler.resample(frame) + resampler.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype("<i2")


# --- the page --------------------------------------------------------------------------------

@dataclass
class PageServer:
    """Serves the speaker page on ``host``; start/stop it on the namespace thread's loop."""

    host: str
    port: int = 0
    _runner: web.AppRunner | None = field(default=None, repr=False)

    _FILES = {
        "/speaker.html": (BROWSER_DIR / "speaker.html", "text/html"),
        "/speaker.js": (BROWSER_DIR / "speaker.js", "application/javascript"),
        "/janus.js": (JANUS_JS, "application/javascript"),
        "/adapter.js": (ADAPTER_JS, "application/javascript"),
    }

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def page_url(self, janus_url: str, room: int, display: str) -> str:
        query = urlencode({"janus": janus_url, "room": room, "display": display})
        return f"{self.origin}/speaker.html?{query}"

    async def start(self) -> None:
        app = web.Application()
        for route, (path, ctype) in self._FILES.items():
            app.router.add_get(route, self._serve(path, ctype))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @staticmethod
    def _serve(path: Path, ctype: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        body = path.read_bytes()

        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=ctype,
                                headers={"Cache-Control": "no-store"})
        return handler


# --- the browser -----------------------------------------------------------------------------

def chromium_args(binary: str, url: str, fake_mic: Path, origin: str,
                  user_data_dir: Path) -> list[str]:
    """Headless Chromium with a fake microphone playing ``fake_mic``, talking to nobody else."""
    return [
        binary,
        "--headless=new",
        "--no-sandbox",  # root
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={user_data_dir}",
        # No traffic to Google hosts (the namespace has no route out anyway).
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-breakpad",
        "--metrics-recording-only",
        "--password-store=basic",
        # Real host addresses in ICE candidates, not mDNS names.
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        # Media: grant getUserMedia, fake devices, the WAV as microphone.
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        # "%noloop": play the file once, then silence (default: loop it).
        f"--use-file-for-fake-audio-capture={fake_mic}%noloop",
        f"--unsafely-treat-insecure-origin-as-secure={origin}",
        "--autoplay-policy=no-user-gesture-required",
        "--mute-audio",
        "--enable-logging=stderr",
        "--v=0",
        url,
    ]


_CONSOLE_RE = re.compile(r'CONSOLE.*?"\[speaker\] (.*)", source:')


class ChromiumSpeaker:
    """Headless Chromium running the speaker page inside the namespace.

    ``argv_prefix`` is ``jn.exec_args()`` (``ip netns exec <ns>``). Use as
    ``async with ChromiumSpeaker(...) as browser:``; :meth:`wait_for` awaits a ``[speaker]``
    console line, :attr:`lines` holds them all, :attr:`stderr_tail` the rest of the output.
    """

    def __init__(self, argv_prefix: list[str], url: str, fake_mic: Path, origin: str) -> None:
        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("chromium not installed")
        self._tmp = Path(tempfile.mkdtemp(prefix="rw-chromium-"))
        self.argv = [*argv_prefix, *chromium_args(binary, url, fake_mic, origin,
                                                  self._tmp / "profile")]
        self.lines: list[tuple[float, str]] = []
        """``(time.monotonic(), text)`` of each ``[speaker]`` console line."""
        self.stderr_tail: list[str] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> ChromiumSpeaker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self._tmp),
               "XDG_CONFIG_HOME": str(self._tmp / "config"),
               "XDG_CACHE_HOME": str(self._tmp / "cache"), "LANG": "C.UTF-8"}
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=env, start_new_session=True)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while line := await self._proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            m = _CONSOLE_RE.search(text)
            if m:
                self.lines.append((time.monotonic(), m.group(1)))
            elif "dbus" not in text:  # no D-Bus in the namespace: noise
                self.stderr_tail = [*self.stderr_tail[-59:], text]
            self._changed.set()
        self._changed.set()

    async def wait_for(self, pattern: str,
                       timeout: float) -> tuple[float, re.Match[str]]:  # noqa: ASYNC109
        """The first ``[speaker]`` line matching ``pattern``: ``(time.monotonic() it was read,
        match)``. Fails on a ``FAIL`` line, Chromium exiting, or timeout."""
        rx = re.compile(pattern)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for at, text in self.lines:
                if text.startswith("FAIL"):
                    raise AssertionError(f"speaker page: {text}\n{self.report()}")
                if m := rx.search(text):
                    return at, m
            if self._proc is not None and self._proc.returncode is not None:
                raise AssertionError(f"chromium exited ({self._proc.returncode}) before "
                                     f"{pattern!r}\n{self.report()}")
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no speaker line {pattern!r} within {timeout} s\n"
                                     f"{self.report()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def report(self) -> str:
        """Console lines and the last stderr lines (for assertion messages)."""
        console = "\n".join(f"  {text}" for _, text in self.lines)
        tail = "\n".join(f"  {text}" for text in self.stderr_tail[-25:])
        return f"page console:\n{console}\nchromium stderr (tail):\n{tail}"

    async def stop(self) -> None:
        """SIGTERM the browser (it closes its peer connection and ends its children), SIGKILL
        its process group if it is stuck or left anything behind."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reader, 5)
        # Renderer/GPU/utility children share the session: leave none behind.
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self._tmp, ignore_errors=True)
