"""The console's event hook: how its parts report to metrics and logs without depending on them.

:class:`alerts.console.app.Console`, :class:`alerts.console.auth.ConsoleAuth`,
:class:`alerts.console.feed.AlertFeed` and :class:`alerts.console.live.LiveFeed` each take an
optional ``on_event(name, fields)`` (``roomwarden.console_metrics`` turns it into metrics) and call
it through :func:`emit_event`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog

__all__ = ["EventHook", "emit_event"]

log = structlog.get_logger(__name__)

EventHook = Callable[[str, Mapping[str, Any]], None]
"""``(name, fields)``: what happened (``login``, ``record``, ``clients``, ...) and its labels."""


def emit_event(hook: EventHook | None, name: str, fields: Mapping[str, Any]) -> None:
    """Call ``hook`` if there is one. A failing hook is logged, never raised: metrics must not
    break a login, a review, the fan-out or the Kafka reader."""
    if hook is None:
        return
    try:
        hook(name, fields)
    except Exception:
        log.exception("console_event_hook_failed", event=name)
