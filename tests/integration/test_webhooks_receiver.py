"""Host-warning webhooks against a real aiohttp receiver on 127.0.0.1.

The receiver checks every request with the reference library,
``standardwebhooks.Webhook(secret).verify(body, headers)``, and processes each ``webhook-id``
once (what a host is told to do). Small retry schedules keep the tests quick; the dispatcher
and its HTTP sender are the real ones (``allow_networks = ["127.0.0.1/32"]``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import socket
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from standardwebhooks import Webhook

from alerts.webhooks import (
    EgressGuard,
    HttpSender,
    WebhookDispatcher,
    WebhookSettings,
    generate_secret,
)
from alerts.webhooks.outbox import Outbox
from tests.webhook_helpers import make_warning

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[2]
Behaviour = Callable[[int], Awaitable[int]]
"""n-th request on a path (1-based) -> status to answer."""


@dataclass
class Received:
    path: str
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int = 0


@dataclass
class Receiver:
    """A host's webhook endpoint(s): path -> (secret, behaviour)."""

    base: str = ""
    secrets: dict[str, str] = field(default_factory=dict)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    processed: dict[str, int] = field(default_factory=dict)
    """webhook-id -> times the host acted on it (must end up 1 per id)."""
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def endpoint(self, path: str, behaviour: Behaviour | None = None) -> tuple[str, str]:
        """Register ``path``; its URL and a fresh secret."""
        self.secrets[path] = generate_secret()
        self.behaviours[path] = behaviour or answer(200)
        return f"{self.base}{path}", self.secrets[path]

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        rec = Received(request.path, headers.get("webhook-id", ""), headers, body, False)
        self.requests.append(rec)
        try:
            Webhook(self.secrets[request.path]).verify(body, headers)
            rec.verified = True
        except Exception:
            rec.status = 401
            return web.Response(status=401)
        nth = len(self.on(request.path))
        rec.status = await self.behaviours[request.path](nth)
        if 200 <= rec.status < 300 and rec.webhook_id not in self.processed:
            self.processed[rec.webhook_id] = 1  # idempotent by webhook-id, as the spec says
        elif 200 <= rec.status < 300:
            pass  # a duplicate: acknowledged, not acted on again
        headers_out = {"Location": f"{self.base}/elsewhere"} if 300 <= rec.status < 400 else {}
        return web.Response(status=rec.status, headers=headers_out)


def answer(*statuses: int) -> Behaviour:
    """Answer the n-th request with ``statuses[n-1]`` (the last one repeats)."""
    async def behaviour(nth: int) -> int:
        return statuses[min(nth, len(statuses)) - 1]
    return behaviour


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", rx.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rx.base = f"http://127.0.0.1:{port}"
    yield rx
    rx.release.set()
    await runner.cleanup()


def settings_for(hosts: dict[str, tuple[str, str]], outbox: Path,
                 **overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "enabled": True, "outbox_path": str(outbox), "allow_plain_http": True,
        "allow_networks": ["127.0.0.1/32"], "console_base_url": "https://console.test",
        "hosts": {room: {"url": url, "secret": secret} for room, (url, secret) in hosts.items()},
        "schedule_s": [0, 0.05, 0.05, 0.05], "jitter": 0.0, "max_attempts": 4,
        "timeout_s": 5.0}
    values.update(overrides)
    return values


@pytest_asyncio.fixture
async def dispatchers() -> AsyncIterator[list[WebhookDispatcher]]:
    made: list[WebhookDispatcher] = []
    yield made
    for d in made:
        await d.close(timeout_s=1.0)


async def start(made: list[WebhookDispatcher], values: dict[str, object]) -> WebhookDispatcher:
    dispatcher = WebhookDispatcher(WebhookSettings.model_validate(values))
    made.append(dispatcher)
    await dispatcher.start()
    return dispatcher


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:  # polled: the predicates read state other tasks change
            if predicate():
                return
            await asyncio.sleep(0.01)


async def test_fails_twice_then_succeeds_exactly_once_same_id(receiver: Receiver, tmp_path: Path,
                                                              dispatchers) -> None:
    hosts = {"*": receiver.endpoint("/host", answer(500, 500, 200))}
    d = await start(dispatchers, settings_for(hosts, tmp_path / "o.sqlite3"))
    warning = make_warning(1)
    assert d.submit(warning) == "queued"
    assert await settle_real(d, warning.webhook_id) == "delivered"
    got = receiver.on("/host")
    assert [r.status for r in got] == [500, 500, 200]
    assert all(r.verified for r in got)
    assert {r.webhook_id for r in got} == {warning.webhook_id}
    assert receiver.processed == {warning.webhook_id: 1}
    assert d.submit(warning) == "duplicate"  # a replayed escalation: nothing sent again
    await asyncio.sleep(0.2)
    assert len(receiver.on("/host")) == 3
    body = json.loads(got[0].body)
    assert body["data"]["link"] == f"https://console.test/alerts/{warning.alert_id}"
    assert "text" not in json.dumps(body)  # thin: no transcript


async def test_410_stops_deliveries_to_that_endpoint(receiver: Receiver, tmp_path: Path,
                                                     dispatchers) -> None:
    hosts = {"gone": receiver.endpoint("/gone", answer(410)),
             "*": receiver.endpoint("/ok")}
    d = await start(dispatchers, settings_for(hosts, tmp_path / "o.sqlite3"))
    first = make_warning(1, room_id="gone")
    d.submit(first)
    assert await settle_real(d, first.webhook_id) == "disabled"
    assert d.submit(make_warning(2, room_id="gone")) == "dropped_disabled"
    other = make_warning(3, room_id="lobby")
    d.submit(other)
    assert await settle_real(d, other.webhook_id) == "delivered"
    await asyncio.sleep(0.3)  # room for any (wrong) retry
    assert [r.status for r in receiver.on("/gone")] == [410]
    assert d.outbox.is_disabled(hosts["gone"][0])
    # persisted: a restarted dispatcher still drops warnings for it
    await d.close()
    dispatchers.remove(d)
    again = await start(dispatchers, settings_for(hosts, tmp_path / "o.sqlite3"))
    assert again.submit(make_warning(4, room_id="gone")) == "dropped_disabled"


async def test_each_room_verifies_only_with_its_own_secret(receiver: Receiver, tmp_path: Path,
                                                          dispatchers) -> None:
    hosts = {"a": receiver.endpoint("/a"), "b": receiver.endpoint("/b")}
    d = await start(dispatchers, settings_for(hosts, tmp_path / "o.sqlite3"))
    wa, wb = make_warning(1, room_id="a"), make_warning(1, room_id="b")
    d.submit(wa)
    d.submit(wb)
    assert await settle_real(d, wa.webhook_id) == "delivered"
    assert await settle_real(d, wb.webhook_id) == "delivered"
    (ra,), (rb,) = receiver.on("/a"), receiver.on("/b")
    assert ra.verified and rb.verified
    with pytest.raises(Exception, match="signature"):
        Webhook(receiver.secrets["/b"]).verify(ra.body, ra.headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(receiver.secrets["/a"]).verify(rb.body, rb.headers)


async def test_killed_mid_retry_three_times_then_delivered_once_same_id(
        receiver: Receiver, tmp_path: Path, dispatchers) -> None:
    """A dispatcher process is SIGKILLed while an attempt is on the wire, three times over
    (each new process submits the same warning again: a replay); a last one on the same outbox
    delivers it -- same webhook-id and body throughout, processed once by the host."""
    kills = 3

    async def fail_then_hang(nth: int) -> int:
        if 2 <= nth <= 1 + kills:
            await receiver.release.wait()  # the sender is killed while we hold its request
        return 500 if nth <= 1 + kills else 200

    hosts = {"*": receiver.endpoint("/host", fail_then_hang)}
    outbox = tmp_path / "outbox.sqlite3"
    values = settings_for(hosts, outbox, schedule_s=[0, 0.2], max_attempts=10)
    script = textwrap.dedent("""
        import asyncio, json, sys
        from alerts.webhooks import WebhookDispatcher, WebhookSettings
        from tests.webhook_helpers import make_warning

        async def main() -> None:
            d = WebhookDispatcher(WebhookSettings.model_validate(json.loads(sys.argv[1])))
            await d.start()
            d.submit(make_warning(7))
            await asyncio.Event().wait()

        asyncio.run(main())
    """)
    warning = make_warning(7)
    for k in range(1, kills + 1):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, json.dumps(values), cwd=REPO,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            await until(lambda k=k: len(receiver.on("/host")) == 1 + k, timeout_s=30)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        box = Outbox(outbox)
        row = box.get(warning.webhook_id)
        box.close()
        # the attempt on the wire was written down before it was sent
        assert row is not None and row.state == "pending" and row.attempts == 1 + k

    d = await start(dispatchers, values)
    assert await settle_real(d, warning.webhook_id) == "delivered"
    got = receiver.on("/host")
    assert len(got) == kills + 2
    assert (got[0].status, got[-1].status) == (500, 200)  # the held ones never answered
    assert {r.webhook_id for r in got} == {warning.webhook_id}
    assert len({r.body for r in got}) == 1 and all(r.verified for r in got)
    assert receiver.processed == {warning.webhook_id: 1}
    assert d.outbox.get(warning.webhook_id).attempts == kills + 2  # type: ignore[union-attr]


async def test_a_hanging_host_times_out_and_is_retried(receiver: Receiver, tmp_path: Path,
                                                      dispatchers) -> None:
    async def slow_first(nth: int) -> int:
        if nth == 1:
            await asyncio.sleep(2.0)
        return 200

    hosts = {"*": receiver.endpoint("/slow", slow_first)}
    d = await start(dispatchers, settings_for(hosts, tmp_path / "o.sqlite3", timeout_s=0.3))
    warning = make_warning(1)
    d.submit(warning)
    assert await settle_real(d, warning.webhook_id) == "delivered"
    assert len(receiver.on("/slow")) == 2
    row = d.outbox.get(warning.webhook_id)
    assert row is not None and row.attempts == 2


async def test_redirects_are_not_followed(receiver: Receiver, tmp_path: Path,
                                          dispatchers) -> None:
    receiver.endpoint("/elsewhere")
    hosts = {"*": receiver.endpoint("/moved", answer(302))}
    d = await start(dispatchers, settings_for(hosts, tmp_path / "o.sqlite3", max_attempts=2))
    warning = make_warning(1)
    d.submit(warning)
    assert await settle_real(d, warning.webhook_id) == "failed"
    assert [r.status for r in receiver.on("/moved")] == [302, 302]
    assert receiver.on("/elsewhere") == []


@pytest.mark.parametrize("host", [
    "127.0.0.1", "[::ffff:127.0.0.1]", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "127.1",
    "localhost", "127.0.0.1.nip.invalid"])
async def test_internal_addresses_get_no_packet(host: str) -> None:
    """No allow_networks: a listener on loopback sees no connection at all, whatever the
    spelling (the last name resolves to loopback through a fake DNS)."""
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def fake_dns(name: str, p: int) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p))]

    guard = EgressGuard(getaddrinfo=fake_dns if host.endswith(".invalid") else None)
    sender = HttpSender(guard, timeout_s=2.0)
    try:
        result = await sender.send(f"http://{host}:{port}/hook", {"webhook-id": "x"}, b"{}")
    finally:
        await sender.close()
        server.close()
        await server.wait_closed()
    assert result.refused and result.status is None, result
    assert connections == 0


async def settle_real(d: WebhookDispatcher, webhook_id: str, timeout_s: float = 15.0) -> str:
    async with asyncio.timeout(timeout_s):
        while True:
            row = d.outbox.get(webhook_id)
            if row is not None and row.state != "pending":
                return row.state
            await asyncio.sleep(0.01)



async def test_a_name_is_connected_to_the_address_that_was_checked(receiver: Receiver) -> None:
    """``hooks.test`` resolves (fake DNS, once) to 127.0.0.1, which is allowed: the request
    reaches the receiver under that name; a second lookup answering 10.0.0.1 is refused."""
    answers = ["127.0.0.1", "10.0.0.1"]
    lookups: list[str] = []

    async def rebinding_dns(name: str, p: int) -> list[tuple[object, ...]]:
        lookups.append(name)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers.pop(0), p))]

    url, _ = receiver.endpoint("/named")
    port = url.rsplit(":", 1)[1].split("/")[0]
    guard = EgressGuard([ipaddress.ip_network("127.0.0.1/32")], getaddrinfo=rebinding_dns)
    sender = HttpSender(guard, timeout_s=2.0)
    try:
        first = await sender.send(f"http://hooks.test:{port}/named", {}, b"{}")
        await sender.close()  # a fresh connection: the name is looked up again
        second = await sender.send(f"http://hooks.test:{port}/named", {}, b"{}")
    finally:
        await sender.close()
    assert first.status == 401  # reached the receiver (unsigned here, so refused by it)
    (got,) = receiver.on("/named")
    assert got.headers["Host"] == f"hooks.test:{port}"
    assert second.refused and "10.0.0.1 is private" in second.error
    assert lookups == ["hooks.test", "hooks.test"]


async def test_the_escalation_ladder_warns_hosts_once_per_host_warning(
        receiver: Receiver, dispatchers: list[WebhookDispatcher], tmp_path: Path) -> None:
    """Composed as ``serve`` and ``worker policy`` compose it: the scripted sequence (several
    speakers, two rooms, a 40-alert rant) through the escalation ladder gives exactly one signed
    webhook per ``host_warning`` decision -- the rant is one warning, not forty -- to the right
    room's host, verified with that host's secret, ``webhook-id`` = the escalation id."""
    from policy.escalation import Escalator
    from roomwarden.escalations import EscalationStage, WebhookWarnings
    from tests.escalation_script import scripted_sequence

    hosts = {room: receiver.endpoint(f"/host/{room}") for room in ("room-a", "room-b")}
    dispatcher = await start(dispatchers, settings_for(hosts, tmp_path / "outbox.db"))
    stage = EscalationStage(Escalator(), sink=None, source="/t",
                            host_warnings=[WebhookWarnings(dispatcher)])
    for alert in scripted_sequence():
        stage.decide([alert])
    warnings = [e for e in stage.escalations if e.action == "host_warning"]
    assert 0 < len(warnings) < len(scripted_sequence()) // 4
    for _ in range(200):
        if len(receiver.processed) == len(warnings):
            break
        await asyncio.sleep(0.05)
    assert receiver.processed == {e.escalation_id: 1 for e in warnings}
    assert all(r.verified for r in receiver.requests)
    for e in warnings:
        [request] = [r for r in receiver.requests if r.webhook_id == e.escalation_id]
        assert request.path == f"/host/{e.room_id}"
        data = json.loads(request.body)["data"]
        assert data["room_id"] == e.room_id and data["alert_id"] == e.alert_ids[-1]
        assert set(data) == {"alert_id", "room_id", "category", "severity", "suggestion", "link"}
