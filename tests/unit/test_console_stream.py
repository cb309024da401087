"""The console's live stream over HTTP: SSE framing (one JSON line per event whatever was
said), snapshot then live, replay after a reconnect, and a browser that stops reading is dropped
while the others get everything."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from alerts.console.auth import COOKIE_NAME
from alerts.console.feed import AlertFeed
from tests.console_fakes import (
    OPERATOR_TOKEN,
    alert_json,
    build_console,
    login,
    make_alert,
    make_console_app,
)


@pytest_asyncio.fixture
async def setup() -> AsyncIterator[tuple[TestClient[Any, Any], AlertFeed]]:
    console, feed = build_console()
    client = TestClient(TestServer(make_console_app(console)))
    await client.start_server()
    try:
        yield client, feed
    finally:
        await client.close()


async def read_events(response: ClientResponse, n: int, timeout: float = 5.0  # noqa: ASYNC109
                      ) -> list[dict[str, str]]:
    """Parse ``n`` SSE frames (comments skipped)."""
    events: list[dict[str, str]] = []
    frame: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while len(events) < n:
            line = (await response.content.readline()).decode()
            assert line.endswith("\n"), "stream ended"
            line = line.rstrip("\n")
            if not line:
                if frame and set(frame) != {"retry"}:
                    events.append(frame)
                frame = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                assert name not in frame, f"field {name} twice in one frame"
                frame[name] = value
    return events


async def test_stream_sends_a_snapshot_then_live_alerts_one_json_line_each(setup: Any) -> None:
    client, feed = setup[0], setup[1]
    first = alert_json(make_alert(room="room-1", offset=1.0))
    feed.add_alert(first)
    await login(client, OPERATOR_TOKEN)
    response = await client.get("/api/stream")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-store"
    snapshot = await read_events(response, 2)
    assert [e["event"] for e in snapshot] == ["alert", "ready"]
    assert json.loads(snapshot[0]["data"])["alert"]["alert_id"] == first["alert_id"]
    epoch = feed.epoch
    assert snapshot[1]["id"] == f"{epoch}.1"

    # a transcript with line breaks and an SSE-looking payload stays one data line
    hostile = alert_json(make_alert(room="room-2", offset=2.0,
                                    text="you are an idiot\n\nevent: review\ndata: {}\r\nid: 9"))
    feed.add_alert(hostile)
    (live,) = await read_events(response, 1)
    assert live["event"] == "alert" and live["id"] == f"{epoch}.2"
    assert json.loads(live["data"])["alert"]["text"] == hostile["text"]
    response.close()


async def test_reconnect_with_last_event_id_replays_only_what_was_missed(setup: Any) -> None:
    client, feed = setup[0], setup[1]
    await login(client, OPERATOR_TOKEN)
    for i in range(3):
        feed.add_alert(alert_json(make_alert(room=f"room-{i}", offset=float(i))))
    response = await client.get("/api/stream", headers={"Last-Event-ID": f"{feed.epoch}.2"})
    (replayed,) = await read_events(response, 1)
    assert replayed["id"] == f"{feed.epoch}.3"
    response.close()
    # another process's id: a snapshot instead
    response = await client.get("/api/stream", headers={"Last-Event-ID": "0000.2"})
    events = await read_events(response, 4)
    assert [e["event"] for e in events] == ["alert", "alert", "alert", "ready"]
    response.close()



async def test_a_browser_that_stops_reading_is_dropped_and_the_others_get_everything() -> None:
    """Over real sockets: one stream's reader never reads (its socket buffers fill, its writer
    blocks, its queue overflows); the feed drops it and the reading stream gets every alert."""
    console, feed = build_console(client_queue=8, keepalive_s=0.5)
    big = "you are an idiot " + "x" * 4000  # ~4 KB frames fill socket buffers quickly
    async with TestClient(TestServer(make_console_app(console))) as client:
        await login(client, OPERATOR_TOKEN)
        cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE_NAME]
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (client.host, client.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(f"GET /api/stream HTTP/1.1\r\nHost: {client.host}\r\n"
                     f"Cookie: {COOKIE_NAME}={cookie.value}\r\n\r\n".encode())
        await writer.drain()
        assert b"200 OK" in await reader.readline()  # then it never reads again
        fast = await client.get("/api/stream")
        await read_events(fast, 1)  # its "ready"
        assert feed.clients == 2
        sent: list[str] = []
        got: list[str] = []

        async def read_fast() -> None:
            while len(got) < 3000:
                (event,) = await read_events(fast, 1, timeout=20)
                got.append(json.loads(event["data"])["alert"]["alert_id"])

        reading = asyncio.create_task(read_fast())
        for i in range(3000):
            data = alert_json(make_alert(room=f"r{i % 7}", offset=float(i), text=big))
            feed.add_alert(data)
            sent.append(data["alert_id"])
            while len(got) < i - 4:  # the reading browser keeps up, the other never reads
                assert not reading.done(), reading
                await asyncio.sleep(0.0005)
        await asyncio.wait_for(reading, 30)
        assert got == sent
        assert feed.dropped_clients == 1 and feed.clients == 1
        writer.close()
        fast.close()
