"""``roomwarden worker``: pipeline stages as Kafka consumer-group workers.

    roomwarden worker asr [--config F] [--metrics-port N] [--group-id G]

``asr`` consumes segment records (``roomwarden.segments.v1``), transcribes them and produces
transcripts (``kafka.transcripts_topic``); rejected records go to the dead-letter topic. See
:mod:`roomwarden.worker_asr`. Settings: the main ones (``ROOMWARDEN_KAFKA__*``,
``ROOMWARDEN_ASR__*``, ``instance``) plus ``ROOMWARDEN_ASR_WORKER__*``
(:class:`roomwarden.worker_asr.AsrWorkerSettings`). SIGTERM or SIGINT: stop polling, finish
and commit the batch in flight, exit 0. Registered in :mod:`roomwarden.cli` with
``app.add_typer(worker_app, name="worker")``.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import structlog
import typer
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from roomwarden.logs import configure_logging
from roomwarden.settings import ConfigFileError, Settings, load_settings

if TYPE_CHECKING:  # the worker pulls in aiokafka and the model: imported when it runs
    from roomwarden.worker_asr import AsrWorkerSettings, WorkerMetrics

worker_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Pipeline stages as Kafka consumer-group workers.")
log = structlog.get_logger(__name__)


@worker_app.callback()
def _worker() -> None:
    """Pipeline stages as Kafka consumer-group workers."""
    # A callback keeps ``asr`` a subcommand (typer collapses a one-command app otherwise).


@worker_app.command()
def asr(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.")]
    = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Port of /metrics and /healthz (asr_worker.metrics_port; 0 = any).")] = None,
    group_id: Annotated[str | None, typer.Option(
        help="Consumer group (asr_worker.group_id).")] = None,
) -> None:
    """Transcribe segment records from Kafka, as a member of a consumer group.

    Transcripts go to kafka.transcripts_topic, rejected records to the dead-letter topic;
    offsets are committed only after Kafka acked the output."""
    from roomwarden.worker_asr import load_worker_settings

    try:
        settings = load_settings(config)
        worker = load_worker_settings()
    except (ConfigFileError, ValidationError) as exc:
        typer.echo(f"roomwarden: bad configuration: {exc}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(settings.log.level, settings.log.format)
    if metrics_port is not None:
        worker.metrics_port = metrics_port
    if group_id is not None:
        worker.group_id = group_id
    if not settings.kafka.bootstrap_servers:
        typer.echo("roomwarden: set kafka.bootstrap_servers (ROOMWARDEN_KAFKA__BOOTSTRAP_SERVERS)",
                   err=True)
        raise typer.Exit(2)
    raise typer.Exit(_run(run_asr_worker(settings, worker)))


def _run(coro: Any) -> int:
    from asr.models import ModelIntegrityError, ModelNotFoundError
    from roomwarden.worker_asr import DeliveryError

    try:
        return int(asyncio.run(coro))
    except (ModelIntegrityError, ModelNotFoundError, ValueError) as exc:
        typer.echo(f"roomwarden: {exc}", err=True)
        return 2
    except DeliveryError as exc:
        typer.echo(f"roomwarden worker asr: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130


async def run_asr_worker(settings: Settings, params: AsrWorkerSettings,
                         stop: asyncio.Event | None = None) -> int:
    """Model, publisher, consumer and /metrics; runs until ``stop`` (default: SIGTERM/SIGINT)
    is set, then finishes the batch in flight, commits, and shuts everything down."""
    from roomwarden.app import build_publisher, build_recognizer
    from roomwarden.worker_asr import AsrWorker, WorkerMetrics

    assert settings.kafka.bootstrap_servers
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    metrics = WorkerMetrics()
    # The model first: a missing or tampered model fails before the worker joins the group.
    recognizer = await asyncio.to_thread(build_recognizer, settings)
    await asyncio.to_thread(recognizer.warmup)
    publisher = build_publisher(settings, metrics.base)
    await publisher.start()
    worker = AsrWorker(params=params, bootstrap_servers=settings.kafka.bootstrap_servers,
                       recognizer=recognizer, sink=publisher, metrics=metrics,
                       source=f"/roomwarden/{settings.instance}",
                       transcripts_topic=settings.kafka.transcripts_topic,
                       client_id=f"{settings.kafka.client_id}-asr-worker")
    http = await _serve_metrics(metrics, worker, publisher, params)
    try:
        await worker.start()
        await worker.run(stop)
        log.info("asr_worker_stopping", reason="stop requested; last batch committed")
    finally:
        await worker.stop()
        await publisher.stop()
        await asyncio.to_thread(recognizer.close)
        await http.cleanup()
    return 0


async def _serve_metrics(metrics: WorkerMetrics, worker: Any, publisher: Any,
                         params: AsrWorkerSettings) -> web.AppRunner:
    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.base.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        ok = bool(publisher.connected)
        body = {"ok": ok, "kafka_connected": ok,
                "partitions": sorted(tp.partition for tp in worker.assignment)}
        return web.json_response(body, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, params.metrics_host, params.metrics_port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    log.info("asr_worker_metrics", url=f"http://{params.metrics_host}:{port}/metrics")
    return runner


if __name__ == "__main__":  # pragma: no cover
    worker_app()
