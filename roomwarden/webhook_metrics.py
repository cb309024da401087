"""Prometheus metrics of the host-warning webhooks, and the dispatcher built from settings.

The dispatcher (:mod:`alerts.webhooks`) knows nothing of Prometheus: it tells a
:class:`~alerts.webhooks.DispatchObserver` what happens, and :class:`WebhookMetrics` is that
observer. No room ids or URLs as labels (unbounded): those are in the logs.

Wiring (composition root)::

    metrics = WebhookMetrics(registry)          # the app's CollectorRegistry
    dispatcher = build_dispatcher(settings.webhooks, metrics)
    await dispatcher.start(); ...; dispatcher.submit(warning); ...; await dispatcher.close()
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from alerts.webhooks import (
    DELIVERY_OUTCOMES,
    SUBMIT_OUTCOMES,
    WebhookDispatcher,
    WebhookSettings,
)

# Submit -> 2xx. First attempts land in well under a second; retries follow the schedule
# (5 s, 5 min, 30 min, 2 h, ... 24 h), so the buckets reach a day and more.
DELIVERY_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                            1_800.0, 7_200.0, 18_000.0, 86_400.0, 259_200.0)


class WebhookMetrics:
    """The webhook metrics on ``registry``; also the dispatcher's observer.

    - ``roomwarden_webhook_warnings_total{outcome}``: warnings submitted, by what became of
      them at once (queued, duplicate, no_endpoint, dropped_disabled, invalid,
      not_stored);
    - ``roomwarden_webhook_deliveries_total{outcome}``: attempts' outcomes (delivered, retried,
      failed, disabled, refused_address);
    - ``roomwarden_webhook_delivery_latency_seconds``: submit to 2xx, retries included;
    - ``roomwarden_webhook_outbox_pending``: deliveries waiting (read at scrape time).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.warnings = Counter(
            "roomwarden_webhook_warnings_total",
            "Host warnings submitted to the webhook dispatcher, by outcome.",
            ["outcome"], registry=registry)
        self.deliveries = Counter(
            "roomwarden_webhook_deliveries_total",
            "Host warning webhook attempts, by outcome (retried = failed, another attempt "
            "scheduled; disabled = the endpoint answered 410 now or before).",
            ["outcome"], registry=registry)
        self.latency = Histogram(
            "roomwarden_webhook_delivery_latency_seconds",
            "Time from a host warning's submission to its 2xx, retries included.",
            buckets=DELIVERY_LATENCY_BUCKETS, registry=registry)
        self.pending = Gauge(
            "roomwarden_webhook_outbox_pending",
            "Host warning deliveries waiting in the outbox.", registry=registry)
        for outcome in SUBMIT_OUTCOMES:
            self.warnings.labels(outcome=outcome)  # exported at 0 from the start
        for outcome in DELIVERY_OUTCOMES:
            self.deliveries.labels(outcome=outcome)

    def watch(self, dispatcher: WebhookDispatcher) -> None:
        """Read the outbox's pending count at each scrape."""
        self.pending.set_function(lambda: float(dispatcher.pending_count()))

    # DispatchObserver
    def submitted(self, outcome: str) -> None:
        self.warnings.labels(outcome=outcome).inc()

    def attempted(self, outcome: str) -> None:
        self.deliveries.labels(outcome=outcome).inc()

    def delivered(self, latency_s: float) -> None:
        self.latency.observe(latency_s)


def build_dispatcher(settings: WebhookSettings, metrics: WebhookMetrics) -> WebhookDispatcher:
    """The dispatcher of ``settings`` (call ``start()`` inside the event loop), counted."""
    dispatcher = WebhookDispatcher(settings, observer=metrics)
    metrics.watch(dispatcher)
    return dispatcher
