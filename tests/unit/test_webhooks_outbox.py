"""The SQLite outbox on a real file: idempotent by id, attempts written before sending, state
and disabled endpoints surviving a reopen and a killed process, pruning."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.webhooks.outbox import Outbox
from tests.webhook_helpers import T0


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "sub" / "outbox.sqlite3")
    yield box
    box.close()


def test_add_is_idempotent_by_id(outbox: Outbox) -> None:
    assert outbox.add("w1", "room", b"{}", now=T0)
    assert not outbox.add("w1", "other-room", b'{"changed":1}', now=T0 + 5)
    d = outbox.get("w1")
    assert d is not None and d.room_id == "room" and d.body == b"{}" and d.state == "pending"
    assert outbox.counts()["pending"] == 1


def test_due_in_order_excluding_in_flight(outbox: Outbox) -> None:
    outbox.add("late", "r", b"{}", now=T0, due_at=T0 + 10)
    outbox.add("early", "r", b"{}", now=T0, due_at=T0 + 1)
    outbox.add("now", "r", b"{}", now=T0)
    assert [d.webhook_id for d in outbox.due(T0 + 5, limit=10)] == ["now", "early"]
    assert [d.webhook_id for d in outbox.due(T0 + 5, limit=10, exclude={"now"})] == ["early"]
    assert [d.webhook_id for d in outbox.due(T0 + 5, limit=1)] == ["now"]
    assert outbox.next_due_at() == T0
    assert outbox.next_due_at(exclude={"now", "early"}) == T0 + 10


def test_attempt_is_written_before_it_is_sent(outbox: Outbox) -> None:
    outbox.add("w", "r", b"{}", now=T0)
    assert outbox.begin_attempt("w", url="https://h.test", retry_at=T0 + 5) == 1
    d = outbox.get("w")
    assert d is not None and d.attempts == 1 and d.next_attempt_at == T0 + 5
    assert outbox.due(T0 + 1, limit=5) == []  # not picked up again before its retry time
    outbox.reschedule("w", at=T0 + 7, status=500, error="")
    assert outbox.begin_attempt("w", url="https://h.test", retry_at=T0 + 300) == 2
    outbox.finish("w", "delivered", now=T0 + 8, status=200)
    d = outbox.get("w")
    assert d is not None and (d.state, d.attempts, d.last_status) == ("delivered", 2, 200)
    with pytest.raises(KeyError):
        outbox.begin_attempt("w", url="https://h.test", retry_at=T0)
    with pytest.raises(ValueError, match="final state"):
        outbox.finish("w", "pending", now=T0)  # type: ignore[arg-type]


def test_everything_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path)
    box.add("w", "r", b'{"x":1}', now=T0)
    box.begin_attempt("w", url="https://h.test", retry_at=T0 + 5)
    box.disable_endpoint("https://gone.test", now=T0, webhook_id="w0", status=410)
    box.close()
    box = Outbox(path)
    d = box.get("w")
    assert d is not None and d.attempts == 1 and d.body == b'{"x":1}' and d.state == "pending"
    assert box.is_disabled("https://gone.test") and not box.is_disabled("https://h.test")
    assert [e.url for e in box.disabled_endpoints()] == ["https://gone.test"]
    assert box.enable_endpoint("https://gone.test") and not box.is_disabled("https://gone.test")
    assert not box.enable_endpoint("https://gone.test")
    box.close()


def test_an_accepted_delivery_survives_the_process_being_killed(tmp_path: Path) -> None:
    """``os._exit`` right after ``add``: no close, no checkpoint; the row is still there."""
    path = tmp_path / "killed.sqlite3"
    script = textwrap.dedent(f"""
        import os
        from alerts.webhooks.outbox import Outbox
        box = Outbox({str(path)!r})
        box.add("w-killed", "r", b"{{}}", now=1.0)
        box.begin_attempt("w-killed", url="https://h.test", retry_at=6.0)
        os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr
    box = Outbox(path)
    d = box.get("w-killed")
    assert d is not None and d.state == "pending" and d.attempts == 1 and d.next_attempt_at == 6
    box.close()


def test_prune_forgets_only_old_finished_ids(outbox: Outbox) -> None:
    for wid in ("old", "recent", "waiting"):
        outbox.add(wid, "r", b"{}", now=T0)
    outbox.finish("old", "delivered", now=T0)
    outbox.finish("recent", "failed", now=T0 + 100)
    assert outbox.prune(finished_before=T0 + 50) == 1
    assert outbox.get("old") is None
    assert outbox.get("recent") is not None and outbox.get("waiting") is not None
    assert outbox.counts() == {"pending": 1, "delivered": 0, "failed": 1, "disabled": 0,
                               "refused": 0}
    assert outbox.pending_count() == 1
