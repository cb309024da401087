"""``roomwarden console``: the operator console (:mod:`alerts.console`).

    roomwarden console [--config F] [--host H] [--port N] [--store URL] [--key PATH]

Serves the console page on ``console.host:console.port`` (127.0.0.1:8090 by default): the live
alert stream from ``kafka.alerts_topic``, the risk view from ``kafka.escalations_topic``,
reviews to ``kafka.reviews_topic``, alert context, clips and the auditor export from the audit
store (``audit.url``, signing key ``audit.key_path`` -- the recorder's, so exported bundles carry
its signature), ``/metrics`` and ``/healthz``. Logins are ``console.tokens``; with none the
command refuses to start. SIGTERM or SIGINT: close the streams and exit 0.

Registered in :mod:`roomwarden.cli`::

    from roomwarden.cli_console import console
    app.command()(console)

Until :class:`~roomwarden.settings.Settings` has the ``console`` (and ``audit``) sections, they
are read from the environment (``ROOMWARDEN_CONSOLE__*``, ``ROOMWARDEN_AUDIT__*``).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import structlog
import typer

from alerts.console.settings import ConsoleSettings
from roomwarden.cli_common import ConfigOpt, load_cli_settings
from roomwarden.settings import Settings

log = structlog.get_logger(__name__)

HostOpt = Annotated[str | None, typer.Option(help="Listen address (console.host).")]
PortOpt = Annotated[int | None, typer.Option(help="Listen port (console.port; 0 = any).")]
StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="Audit store URL (audit.url), e.g. sqlite:////var/lib/roomwarden/audit.db.")]
KeyOpt = Annotated[Path | None, typer.Option(
    "--key", help="The audit store's Ed25519 signing key (audit.key_path).")]


def console(config: ConfigOpt = None, host: HostOpt = None, port: PortOpt = None,
            store: StoreOpt = None, key: KeyOpt = None) -> None:
    """Serve the operator console: live alerts, reviews, room risk, the auditor export.

    Needs kafka.bootstrap_servers, console.tokens and the audit store (audit.url)."""
    settings = load_cli_settings(config, need_kafka=True)
    section = settings.console
    if host is not None:
        section.host = host
    if port is not None:
        section.port = port
    url = store or settings.audit.url
    key_path = key or settings.audit.key_path
    if not section.tokens:
        typer.echo("roomwarden: set console.tokens (ROOMWARDEN_CONSOLE__TOKENS='[{\"name\": ..., "
                   "\"role\": \"operator\", \"token_sha256\": ...}]'); the console is never open",
                   err=True)
        raise typer.Exit(2)
    try:
        status = asyncio.run(serve_console(settings, section, url, key_path))
    except (ValueError, OSError) as exc:
        typer.echo(f"roomwarden: {exc}", err=True)
        status = 2
    except KeyboardInterrupt:
        status = 130
    raise typer.Exit(status)


async def serve_console(settings: Settings, section: ConsoleSettings, store_url: str,
                        key_path: Path | None, stop: asyncio.Event | None = None,
                        on_url: Callable[[str], None] | None = None) -> int:
    """Open the store, run the console until ``stop`` (default: SIGTERM/SIGINT), close all.

    ``on_url``: optional ``callable(url)`` told the bound address (tests, port 0)."""
    from alerts.audit import open_store
    from alerts.console.export_route import audit_exporter
    from alerts.console.live import ConsoleTopics
    from alerts.console.server import running_console
    from alerts.publisher import PublisherParams
    from roomwarden.console_metrics import ConsoleMetrics

    k = settings.kafka
    assert k.bootstrap_servers
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    store = await asyncio.to_thread(open_store, store_url, key_path=key_path)
    metrics = ConsoleMetrics()
    client_id = f"{k.client_id}-console"
    publisher = PublisherParams(
        bootstrap_servers=k.bootstrap_servers, client_id=client_id, acks=k.acks,
        enable_idempotence=k.enable_idempotence, linger_ms=k.linger_ms,
        compression_type=None if k.compression_type == "none" else k.compression_type,
        request_timeout_ms=k.request_timeout_ms, buffer_max_records=k.buffer_max_records)
    topics = ConsoleTopics(alerts=k.alerts_topic, escalations=k.escalations_topic,
                           reviews=k.reviews_topic)
    try:
        async with running_console(section, bootstrap_servers=k.bootstrap_servers, topics=topics,
                                   store=store, exporter=audit_exporter(store),
                                   publisher=publisher, source=f"/roomwarden/{settings.instance}",
                                   client_id=client_id, on_event=metrics.on_event,
                                   extra_routes=metrics.add_route) as running:
            if on_url is not None:
                on_url(running.url)
            await stop.wait()
            log.info("console_shutting_down")
    finally:
        await asyncio.to_thread(store.close)
    return 0


if __name__ == "__main__":  # pragma: no cover
    typer.run(console)
