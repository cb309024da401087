"""Prometheus metrics of the operator console (``roomwarden console``).

The console (:mod:`alerts.console`) knows nothing of Prometheus: it reports events through an
``on_event(name, fields)`` hook and :class:`ConsoleMetrics` turns them into metrics. No room ids,
alert ids or token names as labels (unbounded or personal): those are in the logs.

Wiring (composition root)::

    metrics = ConsoleMetrics(registry)
    async with running_console(..., on_event=metrics.on_event, extra_routes=metrics.add_route):
        ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from alerts.console.reviews import REVIEW_ACTIONS

__all__ = ["ConsoleMetrics"]


class ConsoleMetrics:
    """The console's metrics on ``registry``:

    - ``roomwarden_console_logins_total{outcome}``: logins (``ok``, ``denied``);
    - ``roomwarden_console_denied_total{status}``: requests refused (``401``, ``403``);
    - ``roomwarden_console_streams``: browser streams open;
    - ``roomwarden_console_streams_dropped_total``: streams dropped for falling behind;
    - ``roomwarden_console_records_total{kind}``: alerts, escalations and reviews taken in;
    - ``roomwarden_console_bad_records_total``: records skipped (not decodable / invalid);
    - ``roomwarden_console_reviews_total{action, outcome}``: reviews (``published``,
      ``duplicate``, ``timeout``, ``failed``);
    - ``roomwarden_console_exports_total{format}``: audit bundles exported.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.logins = Counter("roomwarden_console_logins_total",
                              "Console logins, by outcome.", ["outcome"], registry=r)
        self.denied = Counter("roomwarden_console_denied_total",
                              "Console requests refused, by HTTP status.", ["status"], registry=r)
        self.streams = Gauge("roomwarden_console_streams",
                             "Browser streams (SSE) open.", registry=r)
        self.dropped = Counter("roomwarden_console_streams_dropped_total",
                               "Browser streams dropped because they fell too far behind.",
                               registry=r)
        self.records = Counter("roomwarden_console_records_total",
                               "Events the console took in, by kind.", ["kind"], registry=r)
        self.bad_records = Counter("roomwarden_console_bad_records_total",
                                   "Records the console skipped (not decodable or invalid).",
                                   registry=r)
        self.reviews = Counter("roomwarden_console_reviews_total",
                               "Reviews submitted in the console, by action and outcome.",
                               ["action", "outcome"], registry=r)
        self.exports = Counter("roomwarden_console_exports_total",
                               "Audit bundles exported over HTTP, by format.", ["format"],
                               registry=r)
        for outcome in ("ok", "denied"):
            self.logins.labels(outcome=outcome)
        for status in ("401", "403"):
            self.denied.labels(status=status)
        for kind in ("alert", "escalation", "review"):
            self.records.labels(kind=kind)
        for action in REVIEW_ACTIONS:
            self.reviews.labels(action=action, outcome="published")

    def on_event(self, name: str, fields: Mapping[str, Any]) -> None:
        """The console's event hook."""
        if name == "login":
            self.logins.labels(outcome=str(fields["outcome"])).inc()
        elif name == "denied":
            self.denied.labels(status=str(fields["status"])).inc()
        elif name == "clients":
            self.streams.set(float(fields["count"]))
        elif name == "client_dropped":
            self.dropped.inc()
        elif name == "record":
            self.records.labels(kind=str(fields["kind"])).inc()
        elif name == "bad_record":
            self.bad_records.inc()
        elif name == "review":
            self.reviews.labels(action=str(fields["action"]),
                                outcome=str(fields["outcome"])).inc()
        elif name == "export":
            self.exports.labels(format=str(fields["format"])).inc()

    def add_route(self, app: web.Application) -> None:
        """``GET /metrics`` on the console's app (open, like the main app's: no ids in it)."""

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.registry),
                                headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_get("/metrics", metrics)
