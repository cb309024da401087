"""The console's fan-out (a slow browser is dropped, never blocks the others), the risk board,
token checks, sessions and settings validation."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.console.auth import Principal, SessionStore, TokenBook
from alerts.console.feed import AlertFeed, sse_frame
from alerts.console.risk import RiskBoard, parse_time
from alerts.console.settings import ConsoleSettings, ConsoleToken
from tests.console_fakes import alert_json, make_alert

T0 = parse_time("2025-11-21T20:00:00Z")


def feed(**kwargs: Any) -> AlertFeed:
    return AlertFeed(RiskBoard(300.0, clock=lambda: T0), **kwargs)


def alerts(n: int) -> list[dict[str, Any]]:
    return [alert_json(make_alert(room=f"room-{i % 3}", offset=float(i))) for i in range(n)]


async def test_a_slow_client_is_dropped_and_the_others_get_everything() -> None:
    drops: list[dict[str, Any]] = []

    def on_event(name: str, fields: Any) -> None:
        if name == "client_dropped":
            drops.append(dict(fields))

    f = feed(client_queue=4, on_event=on_event)
    slow, _ = f.subscribe(label="slow")
    fast, _ = f.subscribe(label="fast")
    got: list[str] = []

    async def read_fast() -> None:
        while (event := await fast.queue.get()) is not None:
            got.append(event.data["alert"]["alert_id"])

    reader = asyncio.create_task(read_fast())
    batch = alerts(20)
    for i, data in enumerate(batch):
        assert f.add_alert(data)  # never awaits: publishing cannot block on anyone
        if i % 2:
            await asyncio.sleep(0)  # the fast reader keeps up
    await asyncio.sleep(0)
    assert slow.dropped and not fast.dropped
    assert drops == [{"label": "slow", "queued": 4}]
    # the dropped stream holds only its end marker: the handler stops writing at once
    assert slow.queue.get_nowait() is None and slow.queue.empty()
    assert f.clients == 1 and f.dropped_clients == 1
    f.close()
    await reader
    assert got == [d["alert_id"] for d in batch]


def test_duplicates_are_ignored_and_recent_filters() -> None:
    f = feed(recent=5)
    batch = alerts(7)
    for data in batch:
        assert f.add_alert(data)
    assert not f.add_alert(batch[-1])
    recent = f.recent(limit=10)
    assert [v["alert"]["alert_id"] for v in recent] == [d["alert_id"] for d in batch[2:]][::-1]
    assert {v["alert"]["room_id"] for v in f.recent(room="room-1")} == {"room-1"}
    assert f.recent(severity="critical") == []
    assert f.alert(batch[0]["alert_id"]) is None  # forgotten: only 5 kept


def test_snapshot_replay_and_stale_ids() -> None:
    f = feed(recent=2)  # event log: 8 events
    for data in alerts(3):
        f.add_alert(data)
    _, backlog = f.subscribe(f"{f.epoch}.1")
    assert [e.seq for e in backlog] == [2, 3]
    _, backlog = f.subscribe(None)
    assert [e.kind for e in backlog] == ["alert", "alert", "ready"] and backlog[-1].seq == 3
    for data in alerts(12)[3:]:
        f.add_alert(data)
    _, backlog = f.subscribe(f"{f.epoch}.1")  # older than the log: a snapshot
    assert backlog[-1].kind == "ready"
    _, backlog = f.subscribe(f"{f.epoch}.99")  # from the future: a snapshot
    assert backlog[-1].kind == "ready"


def test_max_clients() -> None:
    from alerts.console.feed import FeedFullError

    f = feed(max_clients=1)
    f.subscribe()
    with pytest.raises(FeedFullError):
        f.subscribe()


def test_sse_frame_is_one_event_whatever_the_text() -> None:
    f = feed()
    data = alert_json(make_alert(text="you are an idiot\r\n\ndata: x\u2028y"))
    f.add_alert(data)
    (event,) = [e for e in f.subscribe()[1] if e.kind == "alert"]
    frame = sse_frame(event, "ep")
    head, sep, rest = frame.partition(b"\n\n")
    assert sep and rest == b""
    assert [line.split(b":")[0] for line in head.split(b"\n")] == [b"id", b"event", b"data"]
    assert b"\r" not in frame


def escalation(i: int, room: str, speaker: str, at: str, risk_room: float,
               risk_speaker: float, action: str = "operator_alert") -> dict[str, Any]:
    return {"escalation_id": f"00000000-0000-4000-8000-{i:012d}", "room_id": room,
            "speaker_id": speaker, "action": action, "reason": "r", "risk_room": risk_room,
            "risk_speaker": risk_speaker, "alert_ids": [f"00000000-0000-4000-9000-{i:012d}"],
            "created_at": at}


def test_risk_board_decays_to_now_and_ignores_late_and_duplicate_escalations() -> None:
    now = [T0 + 300.0]
    board = RiskBoard(300.0, clock=lambda: now[0])
    assert board.observe(escalation(1, "r1", "alice", "2025-11-21T20:00:00Z", 8.0, 6.0))
    assert not board.observe(escalation(1, "r1", "alice", "2025-11-21T20:00:00Z", 8.0, 6.0))
    assert board.observe(escalation(2, "r2", "bob", "2025-11-21T20:05:00Z", 2.0, 2.0,
                                    "host_warning"))
    # an older escalation delivered late does not roll the room back
    assert board.observe(escalation(3, "r1", "carol", "2025-11-21T19:59:00Z", 1.0, 1.0))
    rooms = board.snapshot()
    assert [r["room_id"] for r in rooms] == ["r1", "r2"]
    assert rooms[0]["risk_room"] == pytest.approx(4.0)  # one half-life later
    assert rooms[0]["escalations"] == 2 and rooms[0]["last_action"] == "operator_alert"
    assert {s["speaker_id"]: s["risk_speaker"] for s in rooms[0]["speakers"]} == {
        "alice": pytest.approx(3.0), "carol": pytest.approx(0.5 ** (360 / 300), abs=1e-3)}
    assert rooms[1]["risk_room"] == pytest.approx(2.0)
    room_close = escalation(4, "r2", "", "2025-11-21T20:05:00Z", 100.0, 0.0,
                            "recommend_close_room")
    assert board.observe(room_close)
    r2 = board.room("r2")
    assert r2 is not None and r2["speakers"][0]["speaker_id"] == "bob"  # no "" speaker


def test_tokens_are_compared_by_digest_and_sessions_expire() -> None:
    token = "s3cret-token-long-enough"
    book = TokenBook([ConsoleToken(name="ana", role="operator", token=token),  # type: ignore[arg-type]
                      ConsoleToken(name="aud", role="auditor",
                                   token_sha256=hashlib.sha256(b"x" * 20).hexdigest())])
    assert book.identify(token) == Principal("ana", "operator")
    assert book.identify("x" * 20) == Principal("aud", "auditor")
    assert book.identify(token + " ") is None and book.identify("") is None
    now = [1000.0]
    sessions = SessionStore(ttl_s=60, max_sessions=2, clock=lambda: now[0])
    a, _ = sessions.create(Principal("ana", "operator"))
    b, _ = sessions.create(Principal("ana", "operator"))
    c, _ = sessions.create(Principal("aud", "auditor"))
    assert sessions.get(a) is None and len(sessions) == 2  # oldest dropped past the cap
    assert len({a, b, c}) == 3 and len(c) >= 40
    now[0] += 61
    assert sessions.get(b) is None and sessions.get(c) is None


@pytest.mark.parametrize("tokens, message", [
    ([{"name": "a", "role": "operator"}], "exactly one of"),
    ([{"name": "a", "role": "operator", "token": "short"}], "at least 16"),
    ([{"name": "a", "role": "operator", "token_sha256": "ABC"}], "64 lowercase hex"),
    ([{"name": "a", "role": "admin", "token": "x" * 16}], "role"),
    ([{"name": "a", "role": "operator", "token": "x" * 16},
      {"name": "a", "role": "auditor", "token": "y" * 16}], "duplicate name"),
    ([{"name": "a", "role": "operator", "token": "x" * 16},
      {"name": "b", "role": "auditor", "token_sha256": hashlib.sha256(b"x" * 16).hexdigest()}],
     "share one token"),
])
def test_bad_token_settings_are_refused_naming_the_problem(tokens: list[dict[str, Any]],
                                                           message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ConsoleSettings.model_validate({"tokens": tokens})


def test_console_defaults_are_loopback_and_documented() -> None:
    settings = ConsoleSettings()
    assert settings.host == "127.0.0.1" and settings.tokens == []
    source = __import__("inspect").getsource(ConsoleSettings)
    for name in ConsoleSettings.model_fields:
        assert f'    {name}:' in source and '"""' in source.split(f"    {name}:")[1][:400], name
