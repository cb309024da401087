"""Run a real Janus in a network namespace of the test's own, and talk to it from inside.

``async with janus_in_netns("rwt") as jn:`` (as root):

1. creates a network namespace with a unique name, ``lo`` up, a veth pair ``v0``/``v1`` with
   ``10.213.X.1/24`` and ``10.213.X.2/24`` (IPv6 off), ``X`` chosen per instance;
2. writes a minimal Janus config dir (HTTP transport on ``10.213.X.1:8088`` only, plugins
   videoroom + audiobridge + textroom, no STUN/TURN/NAT mapping, ICE enforced on ``v0``,
   event handlers and other transports off) and starts ``janus -F <dir>`` inside the namespace;
3. waits for ``GET /janus/info`` and yields a :class:`JanusNetns`.

The test process itself stays in the machine's namespace. Client code (tap, publishers) runs
through :meth:`JanusNetns.run_in_netns`: a dedicated thread that ``setns()``-ed into the
namespace runs its own asyncio loop, so every socket aiortc/aioice/aiohttp open there (the
namespace is a per-thread attribute, and sockets keep the namespace they were created in)
lives in the namespace: WebRTC and HTTP can only reach ``10.213.X.*`` and its loopback, never
this machine's real addresses nor anything outside it. :meth:`JanusNetns.exec_args` builds an
``ip netns exec`` command line for programs that must run there too (e.g. Chromium).

On exit (also when the body raised) Janus and whatever else still runs in the namespace is
killed, the thread's loop is stopped and the namespace deleted. :meth:`JanusNetns.kill_janus`,
:meth:`JanusNetns.start_janus` and :meth:`JanusNetns.restart` crash and restart Janus mid-test
(same config, same address; rooms created through the API are gone afterwards, as in real
life). Where this cannot work (not root, no ``ip netns``, no ``janus``) entering calls
``pytest.skip`` with the reason.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
JANUS_PORT = 8088
_PLUGINS = ("libjanus_videoroom.so", "libjanus_audiobridge.so", "libjanus_textroom.so")
_counter = itertools.count()


def unavailable_reason() -> str | None:
    """Why Janus-in-a-namespace cannot run here, or None if it can (as far as checks go)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth)"
    if shutil.which("ip") is None:
        return "iproute2 `ip` not installed"
    if shutil.which("janus") is None:
        return "janus not installed (apt-get install -y janus)"
    if not Path("/etc/janus/janus.jcfg").is_file():
        return "janus installed without /etc/janus/janus.jcfg"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns` unavailable: {probe.stderr.strip()}"
    return None


def _janus_folders() -> dict[str, str]:
    """The Debian package's module folders, read from its stock ``janus.jcfg``."""
    text = Path("/etc/janus/janus.jcfg").read_text()
    out = {}
    for key in ("plugins_folder", "transports_folder", "events_folder", "loggers_folder"):
        m = re.search(rf'^\s*{key}\s*=\s*"([^"]+)"', text, re.M)
        if m is None:
            raise RuntimeError(f"/etc/janus/janus.jcfg has no {key}")
        out[key] = m.group(1)
    return out


def _disable_all_but(folder: str, keep: tuple[str, ...]) -> str:
    names = sorted(p.name for p in Path(folder).glob("libjanus_*.so"))
    return ",".join(n for n in names if n not in keep)


def write_janus_config(cfg: Path, janus_addr: str, debug_level: int = 4) -> None:
    """Write a minimal config dir for Janus bound to ``janus_addr`` (HTTP) and ``v0`` (ICE)."""
    f = _janus_folders()
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "janus.jcfg").write_text(f"""\
general: {{
    configs_folder = "{cfg}"
    plugins_folder = "{f['plugins_folder']}"
    transports_folder = "{f['transports_folder']}"
    events_folder = "{f['events_folder']}"
    loggers_folder = "{f['loggers_folder']}"
    debug_level = {debug_level}
    session_timeout = 60
    server_name = "roomwarden-test"
    interface = "{janus_addr}"
}}
certificates: {{}}
media: {{
    ipv6 = false
}}
nat: {{
    nice_debug = false
    ignore_mdns = true
    ice_enforce_list = "v0"
}}
plugins: {{
    disable = "{_disable_all_but(f['plugins_folder'], _PLUGINS)}"
}}
transports: {{
    disable = "{_disable_all_but(f['transports_folder'], ('libjanus_http.so',))}"
}}
loggers: {{
    disable = "{_disable_all_but(f['loggers_folder'], ())}"
}}
events: {{
    broadcast = false
}}
""")
    (cfg / "janus.transport.http.jcfg").write_text(f"""\
general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {JANUS_PORT}
    ip = "{janus_addr}"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
cors: {{}}
""")
    (cfg / "janus.plugin.videoroom.jcfg").write_text("""\
general: {}
room-1234: {
    description = "Demo Room"
    publishers = 6
    audiocodec = "opus"
}
""")
    (cfg / "janus.plugin.audiobridge.jcfg").write_text("""\
general: {}
room-1234: {
    description = "Demo Room"
    sampling_rate = 16000
}
""")
    (cfg / "janus.plugin.textroom.jcfg").write_text('general: {\n    json = "plain"\n}\n')


class _NetnsLoop:
    """A thread that joined network namespace ``ns`` and runs an asyncio loop."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, name=f"netns-{ns}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.result(timeout=10)

    def _main(self) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            path = f"/run/netns/{self.ns}"
            fd = os.open(path, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({path}): {os.strerror(err)}")
            finally:
                os.close(fd)
            # Never run client code unless this thread really is in the namespace.
            if os.stat("/proc/thread-self/ns/net").st_ino != os.stat(path).st_ino:
                raise RuntimeError(f"thread did not enter netns {self.ns}")
            self.loop = asyncio.new_event_loop()
        except BaseException as exc:
            self._ready.set_exception(exc)
            return
        asyncio.set_event_loop(self.loop)
        self._ready.set_result(None)
        try:
            self.loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()

    def stop(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=15)


@dataclass
class JanusNetns:
    """A running Janus in its own namespace (see the module doc)."""

    ns: str
    subnet: int
    janus_addr: str
    client_addr: str
    config_dir: Path
    log_path: Path
    _loop: _NetnsLoop = field(repr=False)
    janus_args: tuple[str, ...] = ()
    start_timeout_s: float = 20.0
    _proc: asyncio.subprocess.Process | None = field(default=None, repr=False)

    async def start_janus(self) -> None:
        """Start Janus (again) and wait until it answers ``/janus/info``."""
        if self._proc is not None and self._proc.returncode is None:
            raise RuntimeError("janus is already running")
        with self.log_path.open("ab") as log_file:  # the child keeps its own descriptor
            self._proc = await asyncio.create_subprocess_exec(
                *self.exec_args("janus", "-F", str(self.config_dir), "-o", *self.janus_args),
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
        await _wait_ready(self, self._proc, self.start_timeout_s)

    async def kill_janus(self, sig: int = signal.SIGKILL) -> None:
        """Kill Janus (SIGKILL by default: a crash, no goodbye to any client) and reap it."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(sig)
        await proc.wait()

    async def restart(self, down_s: float = 0.0) -> tuple[float, float]:
        """SIGKILL Janus, stay down ``down_s``, start it again; Unix times (killed, answering)."""
        await self.kill_janus()
        killed = time.time()
        await asyncio.sleep(down_s)
        await self.start_janus()
        return killed, time.time()

    async def stop_janus(self) -> None:
        """Terminate Janus gracefully (SIGKILL after 5 s)."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    @property
    def base_url(self) -> str:
        """Janus HTTP API root, reachable only from inside the namespace."""
        return f"http://{self.janus_addr}:{JANUS_PORT}/janus"

    async def run_in_netns(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` on the namespace thread's loop; return/raise its outcome.

        Cancelling the caller cancels the coroutine there. Objects bound to a loop (queues,
        events, tasks) must be created inside ``fn``, never shared between the two loops.
        """
        loop = self._loop.loop
        assert loop is not None

        async def call() -> T:
            return await fn(*args)

        cf = asyncio.run_coroutine_threadsafe(call(), loop)
        try:
            return await asyncio.wrap_future(cf)
        except asyncio.CancelledError:
            cf.cancel()
            raise

    def exec_args(self, *argv: str) -> list[str]:
        """Command line running ``argv`` inside the namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def log_tail(self, lines: int = 40) -> str:
        """The last lines Janus printed (for assertion messages)."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {res.stderr.strip()}")


def _setup_links(ns: str, janus_addr: str, client_addr: str) -> None:
    """``lo`` up and the veth pair, both ends inside ``ns``; no default route (nothing leaves)."""
    _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    for dev, addr in (("v0", janus_addr), ("v1", client_addr)):
        # No IPv6 link-local addresses/candidates. accept_local/rp_filter (observed): without
        # them Janus's (libnice's) STUN replies never reach the client's socket; they go out of
        # v0 and arrive on v1 from an address of this same namespace, dropped as martian.
        _sysctl(ns, f"net.ipv6.conf.{dev}.disable_ipv6=1", f"net.ipv4.conf.{dev}.accept_local=1",
                f"net.ipv4.conf.{dev}.rp_filter=0")
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        _ip("-n", ns, "link", "set", dev, "up")


def _sysctl(ns: str, *settings: str) -> None:
    res = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", *settings],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"sysctl {' '.join(settings)} in {ns}: {res.stderr.strip()}")


def _kill_netns_pids(ns: str) -> None:
    """Kill what still runs in our namespace (only processes this harness started there)."""
    res = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                         check=False)
    for pid in res.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _teardown(ns: str, nsloop: _NetnsLoop) -> None:
    _kill_netns_pids(ns)
    nsloop.stop()
    with contextlib.suppress(RuntimeError):
        _ip("netns", "del", ns)


async def _wait_ready(jn: JanusNetns, proc: asyncio.subprocess.Process,
                      timeout_s: float) -> None:
    async def probe() -> bool:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.get(f"{jn.base_url}/info",
                                    timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    return resp.status == 200 and (await resp.json()).get("janus") == "server_info"
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return False

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"janus exited ({proc.returncode}):\n{jn.log_tail()}")
        if await jn.run_in_netns(probe):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"janus not answering /janus/info within {timeout_s} s:\n{jn.log_tail()}")


@contextlib.asynccontextmanager
async def janus_in_netns(name_prefix: str = "rwt", *, start_timeout_s: float = 20.0,
                         debug_level: int = 4,
                         janus_args: tuple[str, ...] = ()) -> AsyncIterator[JanusNetns]:
    """Start Janus in a fresh namespace; see the module doc. Skips the test where impossible.

    Args:
        name_prefix: start of the namespace name (``<prefix>-<pid>-<n>``).
        start_timeout_s: how long Janus may take to answer ``/janus/info``.
        debug_level: Janus log level (0-7); the log is :meth:`JanusNetns.log_tail`.
        janus_args: extra ``janus`` command-line options (e.g. ``("-l",)`` for libnice debug).
    """
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"Janus netns harness: {reason}")
    n = next(_counter)
    ns = f"{name_prefix}-{os.getpid()}-{n}"
    subnet = (os.getpid() * 7 + n) % 250 + 1  # namespaces are isolated; this only aids reading
    janus_addr, client_addr = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
    tmp = Path(tempfile.mkdtemp(prefix=f"{ns}-"))
    try:
        await asyncio.to_thread(_ip, "netns", "add", ns)
    except RuntimeError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip(f"Janus netns harness: cannot create a network namespace: {exc}")
    nsloop = _NetnsLoop(ns)
    jn: JanusNetns | None = None
    try:
        await asyncio.to_thread(_setup_links, ns, janus_addr, client_addr)
        await asyncio.to_thread(nsloop.start)
        jn = JanusNetns(ns, subnet, janus_addr, client_addr, tmp / "conf", tmp / "janus.log",
                        nsloop, janus_args=janus_args, start_timeout_s=start_timeout_s)
        write_janus_config(jn.config_dir, janus_addr, debug_level)
        await jn.start_janus()
        yield jn
    finally:
        if jn is not None:
            await jn.stop_janus()
        await asyncio.to_thread(_teardown, ns, nsloop)
        if not os.environ.get("ROOMWARDEN_KEEP_JANUS_LOGS"):
            shutil.rmtree(tmp, ignore_errors=True)
