"""Run the console: the Kafka tail, the review publisher and the HTTP app, started and stopped
together (``roomwarden console`` and the tests use this).

    async with running_console(settings, bootstrap_servers="kafka:9092", store=store) as c:
        print(c.url)          # http://127.0.0.1:8090
        await stop.wait()
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from aiohttp import web

from alerts.console.app import Console, make_console_app
from alerts.console.export_route import Exporter
from alerts.console.feed import AlertFeed
from alerts.console.history import AuditReader
from alerts.console.hooks import EventHook
from alerts.console.live import DEFAULT_TOPICS, ConsoleTopics, LiveFeed
from alerts.console.reviews import ReviewDesk
from alerts.console.risk import RiskBoard
from alerts.console.settings import ConsoleSettings
from alerts.publisher import KafkaPublisher, PublisherParams

__all__ = ["RunningConsole", "running_console"]

log = structlog.get_logger(__name__)


@dataclass
class RunningConsole:
    """What :func:`running_console` hands out."""

    url: str
    console: Console
    feed: AlertFeed
    live: LiveFeed
    app: web.Application


@asynccontextmanager
async def running_console(
    settings: ConsoleSettings,
    *,
    bootstrap_servers: str,
    topics: ConsoleTopics = DEFAULT_TOPICS,
    store: AuditReader | None = None,
    exporter: Exporter | None = None,
    publisher: PublisherParams | None = None,
    source: str = "/roomwarden/console",
    client_id: str = "roomwarden-console",
    on_event: EventHook | None = None,
    extra_routes: Callable[[web.Application], None] | None = None,
) -> AsyncIterator[RunningConsole]:
    """Start the console and serve it on ``settings.host:settings.port`` until the block ends.

    Args:
        settings: the console section.
        bootstrap_servers: Kafka.
        topics: alerts / escalations to read, reviews to write (and read).
        store: the audit store (backfill, transcripts, clips); None: live data only.
        exporter: the export function for ``/api/export`` (None: 503 there).
        publisher: how reviews are published (default: ``acks=all`` to ``bootstrap_servers``).
        source: CloudEvents ``source`` of the reviews, ``/roomwarden/<instance>``.
        client_id: Kafka client id of the tail and the publisher.
        on_event: metrics hook (see :class:`Console`, :class:`AlertFeed`, :class:`LiveFeed`).
        extra_routes: adds routes to the app before it starts (``/metrics``).

    Raises:
        ValueError: no tokens configured.
    """
    feed = AlertFeed(RiskBoard(settings.risk_half_life_s), recent=settings.recent_alerts,
                     client_queue=settings.client_queue, max_clients=settings.max_clients,
                     on_event=on_event)
    params = publisher or PublisherParams(bootstrap_servers=bootstrap_servers,
                                          client_id=client_id)
    reviews = KafkaPublisher(params)
    desk = ReviewDesk(reviews, source=source, topic=topics.reviews,
                      ack_timeout_s=settings.review_ack_timeout_s)
    live = LiveFeed(feed, bootstrap_servers=bootstrap_servers, topics=topics, store=store,
                    backfill_s=settings.backfill_s, client_id=client_id, on_event=on_event)
    console = Console(settings, feed, desk=desk, store=store, live=live, exporter=exporter,
                      on_event=on_event)  # first: no tokens -> ValueError before connecting
    app = make_console_app(console)
    if extra_routes is not None:
        extra_routes(app)
    await reviews.start()
    runner: web.AppRunner | None = None
    try:
        await live.start()
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        url = f"http://{host}:{bound[1]}"
        log.info("console_listening", url=url, tokens=len(settings.tokens),
                 operators=sum(t.role == "operator" for t in settings.tokens),
                 auditors=sum(t.role == "auditor" for t in settings.tokens),
                 store=store is not None)
        yield RunningConsole(url, console, feed, live, app)
    finally:
        feed.close()
        if runner is not None:
            await runner.cleanup()
        await live.stop()
        await reviews.stop()
