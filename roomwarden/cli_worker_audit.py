"""``roomwarden worker audit``: the audit recorder (:mod:`roomwarden.worker_audit`).

    roomwarden worker audit [--config F] [--store URL] [--key PATH] [--metrics-port N]
                            [--group-id G]

Follows kafka.transcripts_topic, kafka.alerts_topic, kafka.gaps_topic, kafka.escalations_topic,
kafka.reviews_topic and kafka.evidence_topic in a consumer group and appends every
record to the audit store (``audit.url``, signing key ``audit.key_path``), one transaction per
poll, committing offsets only after the store has them. Records that are not what their topic
carries go to audit_worker.dlq_topic with a reason. SIGTERM or SIGINT: finish the poll in flight
(stored and committed), exit 0.

Registered next to ``worker asr`` / ``worker policy`` in :mod:`roomwarden.cli`. Also runnable
on its own: ``python -m roomwarden.cli_worker_audit [options]``.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer

from alerts.audit.settings import AuditSettings
from roomwarden.cli_common import ConfigOpt, load_cli_settings
from roomwarden.cli_worker import GroupIdOpt, MetricsPortOpt, override_group
from roomwarden.settings import AuditWorkerSettings, Settings

log = structlog.get_logger(__name__)

StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="Audit store URL (audit.url), e.g. sqlite:////var/lib/roomwarden/audit.db.")]
KeyOpt = Annotated[Path | None, typer.Option(
    "--key", help="Ed25519 signing key file (audit.key_path); created 0600 when missing.")]


def audit(config: ConfigOpt = None, store: StoreOpt = None, key: KeyOpt = None,
          metrics_port: MetricsPortOpt = None, group_id: GroupIdOpt = None) -> None:
    """Record transcripts, alerts, evidence, escalations, reviews and gaps from Kafka into the
    audit log, as a member of a consumer group.

    Each poll is appended in one store transaction; offsets are committed only after that, so
    everything acknowledged on Kafka is in the log after a crash. Bad records go to
    audit_worker.dlq_topic."""
    settings = load_cli_settings(config, need_kafka=True)
    audit_settings, worker_settings = settings.audit, settings.audit_worker
    override_group(worker_settings, metrics_port, group_id)
    if store is not None:
        audit_settings.url = store
    if key is not None:
        audit_settings.key_path = key
    raise typer.Exit(_run(run_audit_worker(settings, audit_settings, worker_settings)))


def _run(coro: Any) -> int:
    from alerts.audit import AuditError
    from roomwarden.worker_loop import DeliveryError

    try:
        return int(asyncio.run(coro))
    except (AuditError, ValueError, OSError) as exc:
        typer.echo(f"roomwarden worker audit: {exc}", err=True)
        return 2
    except DeliveryError as exc:
        typer.echo(f"roomwarden worker audit: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        return 130


async def run_audit_worker(settings: Settings, audit_settings: AuditSettings,
                           worker_settings: AuditWorkerSettings,
                           stop: asyncio.Event | None = None) -> int:
    """Store, publisher (dead letters), consumer, checkpoint ticker and /metrics; runs until
    ``stop`` (default: SIGTERM/SIGINT) is set, then finishes the poll in flight (stored,
    committed) and shuts everything down."""
    from alerts.audit import open_store
    from roomwarden.app import build_publisher
    from roomwarden.worker_audit import (
        AuditWorker,
        StoreThread,
        audit_topics,
        audit_worker_metrics,
    )
    from roomwarden.worker_loop import run_worker

    assert settings.kafka.bootstrap_servers
    topics = audit_topics(settings.kafka, worker_settings)
    metrics = audit_worker_metrics()
    thread = StoreThread()
    try:
        # The store first: an unreadable database or key fails before joining the group.
        store = await thread.call(open_store, audit_settings.url,
                                  key_path=audit_settings.key_path,
                                  keep_evidence=audit_settings.keep_evidence)
        try:
            publisher = build_publisher(settings, metrics[0].base)
            await publisher.start()
            worker = AuditWorker(
                params=worker_settings, bootstrap_servers=settings.kafka.bootstrap_servers,
                topics=topics, store=store, thread=thread, sink=publisher, metrics=metrics,
                source=f"/roomwarden/{settings.instance}",
                checkpoint_every_s=audit_settings.checkpoint_every_s,
                client_id=f"{settings.kafka.client_id}-audit-worker")
            stop = stop or _signalled()
            ticker = asyncio.create_task(
                worker.tick_checkpoints(stop, audit_settings.checkpoint_every_s))
            try:
                return await run_worker(worker, publisher=publisher, metrics=metrics[0],
                                        stop=stop)
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        finally:
            await thread.call(store.close)
    finally:
        thread.close()


def _signalled() -> asyncio.Event:
    """An event set by SIGTERM/SIGINT (what ``run_worker`` would install by itself; made here
    so the checkpoint ticker stops with it)."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


if __name__ == "__main__":  # pragma: no cover
    typer.run(audit)
