"""``roomwarden worker``: pipeline stages as Kafka consumer-group workers.

    roomwarden worker asr    [--config F] [--metrics-port N] [--group-id G]
    roomwarden worker policy [--config F] [--metrics-port N] [--group-id G]

``asr`` consumes segment records (``asr_worker.segments_topic``, where ``serve`` publishes
them with ``pipeline.asr = kafka``), transcribes them and produces transcripts
(``kafka.transcripts_topic``); see :mod:`roomwarden.worker_asr`. ``policy`` consumes those
transcripts, runs the rule pack (``policy.rules``) and produces alerts (``kafka.alerts_topic``),
posting in-room notices when ``notices.enabled``; see :mod:`roomwarden.worker_policy`. Both
dead-letter what they cannot use, with a reason, and commit only after Kafka acked their output
(:mod:`roomwarden.worker_loop`). Settings: the main ones plus ``asr_worker.*`` /
``policy_worker.*`` (env ``ROOMWARDEN_ASR_WORKER__*`` / ``ROOMWARDEN_POLICY_WORKER__*``, or
TOML sections). SIGTERM or SIGINT: stop polling, finish and commit the batch in flight, exit 0.
Registered in :mod:`roomwarden.cli` with ``app.add_typer(worker_app, name="worker")``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import structlog
import typer

from roomwarden.cli_common import ConfigOpt, load_cli_settings
from roomwarden.settings import ConsumerGroupSettings, Settings

worker_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Pipeline stages as Kafka consumer-group workers.")
log = structlog.get_logger(__name__)

MetricsPortOpt = Annotated[int | None, typer.Option(
    help="Port of /metrics and /healthz (<worker>.metrics_port; 0 = any).")]
GroupIdOpt = Annotated[str | None, typer.Option(help="Consumer group (<worker>.group_id).")]


@worker_app.callback()
def _worker() -> None:
    """Pipeline stages as Kafka consumer-group workers."""
    # A callback keeps the commands subcommands (typer collapses a one-command app otherwise).


@worker_app.command()
def asr(config: ConfigOpt = None, metrics_port: MetricsPortOpt = None,
        group_id: GroupIdOpt = None) -> None:
    """Transcribe segment records from Kafka, as a member of a consumer group.

    Transcripts go to kafka.transcripts_topic, rejected records to asr_worker.dlq_topic;
    offsets are committed only after Kafka acked the output."""
    settings = load_cli_settings(config, need_kafka=True)
    override_group(settings.asr_worker, metrics_port, group_id)
    raise typer.Exit(_run(run_asr_worker(settings)))


@worker_app.command()
def policy(config: ConfigOpt = None, metrics_port: MetricsPortOpt = None,
           group_id: GroupIdOpt = None) -> None:
    """Turn transcript records from Kafka into alerts, as a member of a consumer group.

    Alerts go to kafka.alerts_topic, unreadable transcripts to policy_worker.dlq_topic;
    offsets are committed only after Kafka acked the output."""
    settings = load_cli_settings(config, need_kafka=True)
    override_group(settings.policy_worker, metrics_port, group_id)
    raise typer.Exit(_run(run_policy_worker(settings)))


def override_group(params: ConsumerGroupSettings, metrics_port: int | None,
              group_id: str | None) -> None:
    if metrics_port is not None:
        params.metrics_port = metrics_port
    if group_id is not None:
        params.group_id = group_id


def _run(coro: Any) -> int:
    from asr.models import ModelIntegrityError, ModelNotFoundError
    from policy.rules import RulePackError
    from roomwarden.worker_loop import DeliveryError

    try:
        return int(asyncio.run(coro))
    except (ModelIntegrityError, ModelNotFoundError, RulePackError, ValueError) as exc:
        typer.echo(f"roomwarden: {exc}", err=True)
        return 2
    except DeliveryError as exc:
        typer.echo(f"roomwarden worker: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130


async def run_asr_worker(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Model, publisher, consumer and /metrics (``settings.asr_worker``); runs until ``stop``
    (default: SIGTERM/SIGINT) is set, then finishes the batch in flight, commits, and shuts
    everything down."""
    from roomwarden.app import build_publisher, build_recognizer
    from roomwarden.worker_asr import AsrWorker, asr_worker_metrics
    from roomwarden.worker_loop import run_worker

    assert settings.kafka.bootstrap_servers
    metrics = asr_worker_metrics()
    # The model first: a missing or tampered model fails before the worker joins the group.
    recognizer = await asyncio.to_thread(build_recognizer, settings)
    try:
        await asyncio.to_thread(recognizer.warmup)
        publisher = build_publisher(settings, metrics.base)
        await publisher.start()
        worker = AsrWorker(params=settings.asr_worker,
                           bootstrap_servers=settings.kafka.bootstrap_servers,
                           recognizer=recognizer, sink=publisher, metrics=metrics,
                           source=f"/roomwarden/{settings.instance}",
                           transcripts_topic=settings.kafka.transcripts_topic,
                           client_id=f"{settings.kafka.client_id}-asr-worker")
        return await run_worker(worker, publisher=publisher, metrics=metrics, stop=stop)
    finally:
        await asyncio.to_thread(recognizer.close)


async def run_policy_worker(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Rule pack, publisher, consumer, notices and /metrics (``settings.policy_worker``); runs
    until ``stop`` (default: SIGTERM/SIGINT) is set, then finishes the batch in flight,
    commits, and shuts everything down."""
    from roomwarden.app import (
        build_escalations,
        build_notices,
        build_publisher,
        build_webhooks,
        host_warning_sinks,
        load_policy,
        policy_reloader,
    )
    from roomwarden.worker_loop import run_worker
    from roomwarden.worker_policy import PolicyWorker, policy_worker_metrics

    assert settings.kafka.bootstrap_servers
    metrics = policy_worker_metrics()
    engine = load_policy(settings)  # first: a broken pack fails before joining the group
    notices = build_notices(settings, metrics.base)
    # The ladder decides host warnings when on; the worker publishes its records itself (sink
    # None) so that the commit waits for their acks.
    webhooks = build_webhooks(settings, metrics.base)
    escalations = build_escalations(settings, None,
                                    host_warnings=host_warning_sinks(notices, webhooks))
    try:
        if webhooks is not None:
            await webhooks.start()
        publisher = build_publisher(settings, metrics.base)
        await publisher.start()
        worker = PolicyWorker(params=settings.policy_worker,
                              bootstrap_servers=settings.kafka.bootstrap_servers,
                              transcripts_topic=settings.kafka.transcripts_topic,
                              alerts_topic=settings.kafka.alerts_topic, policy=engine,
                              sink=publisher, metrics=metrics,
                              source=f"/roomwarden/{settings.instance}",
                              notices=notices if escalations is None else None,
                              escalations=escalations,
                              client_id=f"{settings.kafka.client_id}-policy-worker")
        reloader = policy_reloader(settings, engine, worker.set_policy, metrics.base)
        if reloader is not None:
            await reloader.start()
        try:
            return await run_worker(worker, publisher=publisher, metrics=metrics, stop=stop)
        finally:
            if reloader is not None:
                await reloader.stop()
    finally:
        if notices is not None:
            await notices.close()
        if webhooks is not None:
            await webhooks.close()


if __name__ == "__main__":  # pragma: no cover
    worker_app()
