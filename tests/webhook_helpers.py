"""Test support for ``alerts.webhooks``: warnings, settings, a fake clock, a scripted sender.

``FakeClock.sleep`` advances the clock instead of waiting, so a dispatcher's whole retry
schedule (days) runs in milliseconds; ``ScriptedSender`` answers attempts from a script and
records what it was sent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from alerts.webhooks import AttemptResult, HostEndpoint, HostWarning, WebhookSettings
from alerts.webhooks.outbox import Outbox
from alerts.webhooks.signing import generate_secret

T0 = 1_763_755_200.0  # 2025-11-21T20:00:00Z


def make_warning(n: int = 0, *, room_id: str = "room-1", **overrides: object) -> HostWarning:
    fields: dict[str, object] = {
        "webhook_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"warning/{room_id}/{n}")),
        "room_id": room_id, "alert_id": f"alert-{room_id}-{n}", "category": "harassment",
        "severity": "medium", "suggestion": "warn", "occurred_at": T0 + n}
    fields.update(overrides)
    return HostWarning(**fields)  # type: ignore[arg-type]


def make_settings(hosts: Mapping[str, str], *, secrets: Mapping[str, str] | None = None,
                  **overrides: object) -> WebhookSettings:
    """Settings with one endpoint per ``hosts`` entry (room id -> URL), secrets generated."""
    secrets = dict(secrets or {})
    endpoints = {room: HostEndpoint(url=url, secret=secrets.get(room) or generate_secret())
                 for room, url in hosts.items()}
    values: dict[str, object] = {"enabled": True, "hosts": endpoints, "allow_plain_http": True,
                                 "console_base_url": "https://console.test",
                                 "schedule_s": [0, 5, 300], "jitter": 0.0, "max_attempts": 3}
    values.update(overrides)
    return WebhookSettings.model_validate(values)


class FakeClock:
    """Wall clock that only moves when the code under test sleeps."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class Sent:
    at: float
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedSender:
    """Answers each attempt with the next result of ``script`` (the last one repeats)."""

    clock: Callable[[], float]
    script: list[AttemptResult | Exception] = field(
        default_factory=lambda: [AttemptResult(status=200)])
    sent: list[Sent] = field(default_factory=list)
    closed: bool = False

    async def send(self, url: str, headers: Mapping[str, str], body: bytes) -> AttemptResult:
        self.sent.append(Sent(self.clock(), url, dict(headers), body))
        await asyncio.sleep(0)
        step = self.script[min(len(self.sent) - 1, len(self.script) - 1)]
        if isinstance(step, Exception):
            raise step
        return step

    async def close(self) -> None:
        self.closed = True


async def settle(outbox: Outbox, webhook_id: str, *, iterations: int = 100_000) -> str:
    """Yield to the loop until ``webhook_id`` leaves ``pending``; its final state."""
    for _ in range(iterations):
        delivery = outbox.get(webhook_id)
        if delivery is not None and delivery.state != "pending":
            return delivery.state
        await asyncio.sleep(0)
    raise AssertionError(f"{webhook_id} still pending: {outbox.get(webhook_id)}")
