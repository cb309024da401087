"""Host warnings as Standard Webhooks: signed, thin, retried from a persistent outbox.

- :mod:`.payload`: :class:`HostWarning` (what the escalation stage hands over) and its thin body;
- :mod:`.signing`: ``webhook-*`` headers by the reference ``standardwebhooks`` library;
- :mod:`.egress`: the SSRF guard (resolve, check, connect to the checked address);
- :mod:`.outbox`: the SQLite outbox (pending deliveries, attempts, disabled endpoints);
- :mod:`.sender`: one HTTP attempt (aiohttp, no redirects, timeout);
- :mod:`.dispatcher`: :class:`WebhookDispatcher` (``submit`` / ``start`` / ``close``);
- :mod:`.settings`: :class:`WebhookSettings`.
"""

from alerts.webhooks.dispatcher import (
    DELIVERY_OUTCOMES,
    SUBMIT_OUTCOMES,
    DispatchObserver,
    WebhookDispatcher,
    backoff_wait,
)
from alerts.webhooks.egress import EgressGuard, EgressRefused
from alerts.webhooks.outbox import Delivery, Outbox
from alerts.webhooks.payload import EVENT_TYPE, HostWarning, thin_body
from alerts.webhooks.sender import AttemptResult, HttpSender, Sender
from alerts.webhooks.settings import HostEndpoint, WebhookSettings
from alerts.webhooks.signing import generate_secret, parse_secret, signed_headers

__all__ = [
    "DELIVERY_OUTCOMES",
    "EVENT_TYPE",
    "SUBMIT_OUTCOMES",
    "AttemptResult",
    "Delivery",
    "DispatchObserver",
    "EgressGuard",
    "EgressRefused",
    "HostEndpoint",
    "HostWarning",
    "HttpSender",
    "Outbox",
    "Sender",
    "WebhookDispatcher",
    "WebhookSettings",
    "backoff_wait",
    "generate_secret",
    "parse_secret",
    "signed_headers",
    "thin_body",
]
