"""The console's HTTP app through aiohttp's test client: login and roles (401/403),
alert details with the transcript minute and the clip, reviews answered after the ack, the
export route, and the headers every answer carries (the stream: test_console_stream.py)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from alerts.console.auth import COOKIE_NAME
from alerts.console.export_route import ExportRequest
from alerts.console.feed import AlertFeed
from alerts.envelope import decode_record
from alerts.schemas import validate
from tests.console_fakes import (
    AUDITOR_TOKEN,
    EVENT_T0,
    OPERATOR_TOKEN,
    AckingSink,
    FakeStore,
    alert_json,
    build_console,
    login,
    make_alert,
    make_console_app,
    transcript_json,
)

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28)


def exporter_calls() -> tuple[list[ExportRequest], Any]:
    calls: list[ExportRequest] = []

    def exporter(request: ExportRequest, out: Path) -> Path:
        calls.append(request)
        (out / "records.jsonl").write_text('{"seq":0}\n')
        (out / "manifest.json").write_text("{}")
        return out

    return calls, exporter


@pytest_asyncio.fixture
async def setup() -> AsyncIterator[tuple[TestClient[Any, Any], AlertFeed, FakeStore, AckingSink,
                                         list[ExportRequest]]]:
    store, sink = FakeStore(), AckingSink()
    calls, exporter = exporter_calls()
    console, feed = build_console(store=store, sink=sink, exporter=exporter)
    client = TestClient(TestServer(make_console_app(console)))
    await client.start_server()
    try:
        yield client, feed, store, sink, calls
    finally:
        await client.close()


# --- auth -----------------------------------------------------------------------------------

async def test_login_refuses_missing_and_wrong_tokens_and_logs_no_token(setup: Any) -> None:
    client = setup[0]
    with capture_logs() as logs:
        assert (await client.post("/api/login", json={})).status == 401
        assert (await login(client, "wrong-token-0000000000")).status == 401
        assert (await client.post("/api/login", data={"token": ""})).status == 401
        ok = await login(client, OPERATOR_TOKEN)
        assert ok.status == 200 and await ok.json() == {
            "name": "ana", "role": "operator", "expires_at": pytest.approx(
                (await ok.json())["expires_at"])}
    cookie = ok.headers["Set-Cookie"]
    assert f"{COOKIE_NAME}=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    events = [entry["event"] for entry in logs]
    assert events.count("console_login_denied") == 3 and events.count("console_login") == 1
    text = json.dumps(logs, default=str)
    assert OPERATOR_TOKEN not in text and "wrong-token" not in text
    assert ok.cookies[COOKIE_NAME].value not in text  # nor the session id


@pytest.mark.parametrize("path", ["/api/alerts", "/api/stream", "/api/rooms/risk", "/api/me",
                                  "/api/export?room=r", "/api/alerts/x", "/api/alerts/x/clip"])
async def test_every_api_refuses_missing_and_wrong_credentials(setup: Any, path: str) -> None:
    client = setup[0]
    assert (await client.get(path)).status == 401
    assert (await client.get(path, headers={"Authorization": "Bearer nope-nope-nope-nope"})
            ).status == 401
    client.session.cookie_jar.update_cookies({COOKIE_NAME: "forged-session-id"})
    response = await client.get(path)
    assert response.status == 401 and "WWW-Authenticate" in response.headers
    client.session.cookie_jar.clear()


async def test_console_page_needs_a_session_and_the_login_page_does_not(setup: Any) -> None:
    client = setup[0]
    page = await client.get("/console", allow_redirects=False)
    assert page.status == 302 and page.headers["Location"] == "/"
    assert (await client.get("/")).status == 200
    await login(client, OPERATOR_TOKEN)
    page = await client.get("/console")
    assert page.status == 200 and "alerts-table" in await page.text()
    forwarded = await client.get("/", allow_redirects=False)
    assert forwarded.status == 302 and forwarded.headers["Location"] == "/console"


async def test_export_is_for_auditors_only(setup: Any) -> None:
    client, _, _, _, calls = setup
    await login(client, OPERATOR_TOKEN)
    with capture_logs() as logs:
        denied = await client.get("/api/export?room=room-42")
    assert denied.status == 403
    assert any(e["event"] == "console_denied" and e["status"] == 403 and e["name"] == "ana"
               for e in logs)
    operator_bearer = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    client.session.cookie_jar.clear()
    assert (await client.get("/api/export?room=room-42", headers=operator_bearer)).status == 403
    assert calls == []

    auditor = {"Authorization": f"Bearer {AUDITOR_TOKEN}"}
    response = await client.get(
        "/api/export?room=room-42&from=2025-11-21T20:00:00Z&to=1763758800&format=csv",
        headers=auditor)
    assert response.status == 200 and response.content_type == "application/x-tar"
    assert "attachment" in response.headers["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(await response.read())) as tar:
        names = sorted(tar.getnames())
    assert any(n.endswith("records.jsonl") for n in names)
    assert calls == [ExportRequest("room-42", EVENT_T0, 1_763_758_800.0, "csv")]
    for bad in ("", "?room=r&format=pdf", "?room=r&from=yesterday", "?room=r&from=10&to=5",
                "?room=r&from=2025-11-21T20:00:00"):
        response = await client.get(f"/api/export{bad}", headers=auditor)
        assert response.status == 400, bad
        assert "error" in await response.json()


async def test_logout_ends_the_session(setup: Any) -> None:
    client = setup[0]
    await login(client, AUDITOR_TOKEN)
    assert (await client.get("/api/me")).status == 200
    assert (await client.post("/api/logout")).status == 200
    # the browser dropped the cookie; a copy of it no longer works either
    assert (await client.get("/api/me")).status == 401


# --- one alert ------------------------------------------------------------------------------

def seed_room(store: FakeStore, feed: AlertFeed) -> dict[str, Any]:
    """A room with a minute of conversation, an alert at offset 70 s and its evidence clip."""
    room = "room-42"
    lines = [("bob", 5.0, "too early to show"), ("bob", 20.0, "hello everyone"),
             ("carol", 40.0, "how is it going"), ("alice", 70.0, "you are an idiot"),
             ("bob", 90.0, "said after the alert")]
    for speaker, offset, text in lines:
        data = transcript_json(room, speaker, offset, text)
        store.add(room, "transcript", data["transcript_id"], EVENT_T0 + offset + 1.0, data)
    alert = alert_json(make_alert(room=room, speaker="alice", offset=70.0))
    feed.add_alert(alert)
    store.add(room, "evidence", "ev-1", EVENT_T0 + 71.0,
              {"segment_id": alert["segment_id"], "speaker_id": "alice", "start": 70.0,
               "end": 71.0, "sample_rate": 16000, "format": "wav"}, blob=WAV)
    return alert


async def test_detail_shows_the_minute_before_with_the_flagged_span(setup: Any) -> None:
    client, feed, store = setup[0], setup[1], setup[2]
    alert = seed_room(store, feed)
    await login(client, OPERATOR_TOKEN)
    response = await client.get(f"/api/alerts/{alert['alert_id']}")
    assert response.status == 200
    detail = await response.json()
    texts = [line["text"] for line in detail["context"]]
    assert texts == ["hello everyone", "how is it going", "you are an idiot"]
    flagged = [line for line in detail["context"] if line["flagged"]]
    assert len(flagged) == 1 and flagged[0]["match"] == {"start": 11, "end": 16}
    assert detail["speaker"] == {"speaker_id": "alice", "speaker_name": ""}
    assert detail["rule"]["rule_id"] == "abuse.idiot" and detail["rule"]["severity"] == "medium"
    assert detail["score"]["match_kind"] == "exact" and detail["score"]["confidence"] == 0.91
    assert detail["clip"] == f"/api/alerts/{alert['alert_id']}/clip"

    clip = await client.get(detail["clip"])
    assert clip.status == 200 and clip.content_type == "audio/wav"
    assert await clip.read() == WAV


async def test_alert_without_clip_or_store_entry(setup: Any) -> None:
    client, feed = setup[0], setup[1]
    alert = alert_json(make_alert(room="lonely", offset=3.0))
    feed.add_alert(alert)
    await login(client, AUDITOR_TOKEN)
    detail = await (await client.get(f"/api/alerts/{alert['alert_id']}")).json()
    assert detail["clip"] is None
    assert [line["text"] for line in detail["context"]] == [alert["text"]]  # the alert itself
    assert (await client.get(f"/api/alerts/{alert['alert_id']}/clip")).status == 404
    assert (await client.get("/api/alerts/00000000-0000-4000-8000-000000000000")).status == 404


async def test_alert_found_in_the_store_when_no_longer_in_memory(setup: Any) -> None:
    client, _, store = setup[0], setup[1], setup[2]
    alert = alert_json(make_alert(room="old", offset=3.0))
    store.add("old", "alert", alert["alert_id"], EVENT_T0 + 4.0, alert)
    await login(client, OPERATOR_TOKEN)
    response = await client.get(f"/api/alerts/{alert['alert_id']}")
    assert response.status == 200 and (await response.json())["alert"] == alert


# --- reviews --------------------------------------------------------------------------------

async def test_operator_review_is_published_schema_valid_and_answered_after_the_ack(
        setup: Any) -> None:
    client, feed, _, sink, _ = setup
    alert = alert_json(make_alert())
    feed.add_alert(alert)
    await login(client, OPERATOR_TOKEN)
    body = {"action": "dismiss", "note": "a quote", "request_id": "abc-1"}
    first = await client.post(f"/api/alerts/{alert['alert_id']}/review", json=body)
    again = await client.post(f"/api/alerts/{alert['alert_id']}/review", json=body)
    assert first.status == again.status == 200
    one, two = await first.json(), await again.json()
    assert (one["published"], two["published"]) == (True, False)
    assert one["review"] == two["review"]
    assert len(sink.records) == 1  # a double click is one record
    record = sink.records[0]
    attributes, data = decode_record(record.headers, record.value)
    validate("review", data)
    assert record.key == b"room-42" and attributes["id"] == data["review_id"]
    assert data | {"reviewed_at": "x"} == {
        "review_id": data["review_id"], "alert_id": alert["alert_id"], "room_id": "room-42",
        "action": "dismiss", "reviewer": "ana", "role": "operator", "note": "a quote",
        "reviewed_at": "x"}
    assert feed.review_of(alert["alert_id"])["action"] == "dismiss"


async def test_review_refusals(setup: Any) -> None:
    client, feed, _, sink, _ = setup
    alert = alert_json(make_alert())
    feed.add_alert(alert)
    url = f"/api/alerts/{alert['alert_id']}/review"
    assert (await client.post(url, json={"action": "dismiss"})).status == 401
    await login(client, AUDITOR_TOKEN)
    assert (await client.post(url, json={"action": "dismiss"})).status == 403  # auditors audit
    await login(client, OPERATOR_TOKEN)
    assert (await client.post(url, data="action=dismiss")).status == 415
    assert (await client.post(url, json={"action": "ban"})).status == 400
    assert (await client.post(url, json={"action": "dismiss", "request_id": "a b"})).status == 400
    assert (await client.post(url, json={"action": "dismiss", "note": "x" * 2001})).status == 400
    missing = "/api/alerts/00000000-0000-4000-8000-000000000000/review"
    assert (await client.post(missing, json={"action": "dismiss"})).status == 404
    cross = await client.post(url, json={"action": "dismiss"},
                              headers={"Origin": "http://evil.example"})
    assert cross.status == 403
    assert sink.records == []


async def test_review_without_ack_answers_503() -> None:
    console, feed = build_console(sink=AckingSink(hold=True))
    console.desk._ack_timeout_s = 0.1  # type: ignore[union-attr]
    alert = alert_json(make_alert())
    feed.add_alert(alert)
    async with TestClient(TestServer(make_console_app(console))) as client:
        await login(client, OPERATOR_TOKEN)
        response = await client.post(f"/api/alerts/{alert['alert_id']}/review",
                                     json={"action": "escalate"})
        assert response.status == 503
        assert "resubmitting is safe" in (await response.json())["error"]


# --- risk, health, headers ------------------------------------------------------------------

async def test_risk_view_and_security_headers(setup: Any) -> None:
    client, feed = setup[0], setup[1]
    feed.add_escalation({"escalation_id": "00000000-0000-4000-8000-000000000001",
                         "room_id": "room-42", "speaker_id": "alice", "action": "operator_alert",
                         "reason": "repeat", "risk_speaker": 6.0, "risk_room": 8.0,
                         "alert_ids": ["00000000-0000-4000-8000-000000000002"],
                         "created_at": "2025-11-21T20:00:00.000Z"})
    await login(client, OPERATOR_TOKEN)
    response = await client.get("/api/rooms/risk")
    body = await response.json()
    (room,) = body["rooms"]
    assert room["room_id"] == "room-42" and room["last_action"] == "operator_alert"
    assert 0 <= room["risk_room"] < 8.0  # decayed since 2025
    assert room["speakers"][0]["speaker_id"] == "alice"
    h = response.headers
    assert "default-src 'self'" in h["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff" and h["Cache-Control"] == "no-store"
    page = await client.get("/static/console.js")
    assert page.status == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
    health = await client.get("/healthz")
    assert health.status == 200 and (await health.json())["alerts"] == 0


def test_the_page_never_parses_room_text_as_html() -> None:
    static = Path(__file__).resolve().parents[2] / "alerts" / "console" / "static"
    script = (static / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script
    for page in static.glob("*.html"):
        text = page.read_text()
        assert "<script>" not in text and "http://" not in text and "https://" not in text


async def test_the_webhook_link_opens_the_alert_in_the_console(setup: Any) -> None:
    client = setup[0]
    alert_id = "9cccaecb-f74d-51ab-821b-5f7c6658cf18"
    link = await client.get(f"/alerts/{alert_id}", allow_redirects=False)
    assert link.status == 302 and link.headers["Location"] == f"/console#alert={alert_id}"
    assert (await client.get("/alerts/<script>", allow_redirects=False)).status == 404
