"""The dispatcher against a scripted sender and a fake clock: the retry schedule (with and
without jitter, Retry-After), 2xx / 410 / refused / other outcomes, idempotency by id, resuming
from the outbox, and that submit never waits."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from alerts.webhooks import AttemptResult, WebhookDispatcher, WebhookSettings, backoff_wait
from alerts.webhooks.outbox import Outbox
from alerts.webhooks.settings import DEFAULT_SCHEDULE_S
from tests.webhook_helpers import (
    T0,
    FakeClock,
    ScriptedSender,
    make_settings,
    make_warning,
    settle,
)

OK = AttemptResult(status=200)
FAIL = AttemptResult(status=500)


class Observer:
    def __init__(self) -> None:
        self.submits: list[str] = []
        self.attempts: list[str] = []
        self.latencies: list[float] = []

    def submitted(self, outcome: str) -> None:
        self.submits.append(outcome)

    def attempted(self, outcome: str) -> None:
        self.attempts.append(outcome)

    def delivered(self, latency_s: float) -> None:
        self.latencies.append(latency_s)


@dataclass
class Rig:
    dispatcher: WebhookDispatcher
    sender: ScriptedSender
    clock: FakeClock
    outbox: Outbox
    observer: Observer


@pytest_asyncio.fixture
async def make_rig(tmp_path: Path) -> AsyncIterator[Callable[..., Rig]]:
    started: list[WebhookDispatcher] = []
    boxes: list[Outbox] = []

    def make(settings: WebhookSettings, script: list[AttemptResult | Exception] | None = None,
             *, rand: Callable[[], float] = lambda: 0.0, outbox: Outbox | None = None,
             clock: FakeClock | None = None) -> Rig:
        clock = clock or FakeClock()
        sender = ScriptedSender(clock, script or [OK])
        if outbox is None:
            outbox = Outbox(tmp_path / f"outbox-{len(boxes)}.sqlite3")
            boxes.append(outbox)
        observer = Observer()
        dispatcher = WebhookDispatcher(settings, sender=sender, outbox=outbox,
                                       observer=observer, clock=clock, sleep=clock.sleep,
                                       rand=rand, max_idle_s=1e9)
        started.append(dispatcher)
        return Rig(dispatcher, sender, clock, outbox, observer)

    yield make
    for dispatcher in started:
        await dispatcher.close()
    for box in boxes:
        box.close()


def test_backoff_wait_follows_the_schedule_then_repeats_its_last_step() -> None:
    schedule = list(DEFAULT_SCHEDULE_S)
    assert [backoff_wait(n, schedule, 0.0, 0.9) for n in range(1, 11)] == schedule
    assert backoff_wait(11, schedule, 0.0, 0.0) == 86_400
    # Standard Webhooks: 75:35:05 from the first attempt to the last
    assert sum(schedule) == 75 * 3600 + 35 * 60 + 5
    assert backoff_wait(3, schedule, 1.0, 0.25) == 300 * 0.75  # full jitter: [0, step]
    assert backoff_wait(3, schedule, 0.5, 0.999) == pytest.approx(300 * 0.5005)
    with pytest.raises(ValueError):
        backoff_wait(0, schedule, 0.0, 0.0)


async def test_a_failing_host_is_retried_on_the_schedule_then_given_up(make_rig) -> None:
    settings = make_settings({"*": "https://h.test/x"}, schedule_s=list(DEFAULT_SCHEDULE_S),
                             max_attempts=10)
    rig = make_rig(settings, [FAIL])
    await rig.dispatcher.start()
    warning = make_warning(1)
    assert rig.dispatcher.submit(warning) == "queued"
    assert await settle(rig.outbox, warning.webhook_id) == "failed"
    offsets = [s.at - T0 for s in rig.sender.sent]
    assert offsets == list(itertools.accumulate(DEFAULT_SCHEDULE_S))  # 0, 5, 305, ... 75.5 h
    assert {s.headers["webhook-id"] for s in rig.sender.sent} == {warning.webhook_id}
    assert len({s.body for s in rig.sender.sent}) == 1  # same bytes every time
    # each attempt is signed at its own time, so a receiver's 5-min window still accepts it
    assert [int(s.headers["webhook-timestamp"]) for s in rig.sender.sent] == [
        int(s.at) for s in rig.sender.sent]
    assert rig.observer.attempts == ["retried"] * 9 + ["failed"]
    assert rig.outbox.get(warning.webhook_id).attempts == 10  # type: ignore[union-attr]


async def test_full_jitter_keeps_every_wait_within_its_step(make_rig) -> None:
    settings = make_settings({"*": "https://h.test/x"}, schedule_s=list(DEFAULT_SCHEDULE_S),
                             max_attempts=10, jitter=1.0)
    rig = make_rig(settings, [FAIL], rand=random.Random(7).random)
    await rig.dispatcher.start()
    warning = make_warning(1)
    rig.dispatcher.submit(warning)
    await settle(rig.outbox, warning.webhook_id)
    times = [T0] + [s.at for s in rig.sender.sent]
    waits = [b - a for a, b in itertools.pairwise(times)]
    assert len(waits) == 10
    assert all(0 <= w <= step for w, step in zip(waits, DEFAULT_SCHEDULE_S, strict=True))
    assert len({round(w / step, 6) for w, step in zip(waits[1:], DEFAULT_SCHEDULE_S[1:],
                                                      strict=True)}) > 1  # really random


async def test_two_failures_then_success_is_one_delivery(make_rig) -> None:
    rig = make_rig(make_settings({"*": "https://h.test/x"}),
                   [FAIL, AttemptResult(status=None, error="timeout"), OK])
    await rig.dispatcher.start()
    warning = make_warning(2)
    rig.dispatcher.submit(warning)
    assert await settle(rig.outbox, warning.webhook_id) == "delivered"
    assert [s.at - T0 for s in rig.sender.sent] == [0, 5, 305]
    assert rig.observer.attempts == ["retried", "retried", "delivered"]
    assert rig.observer.latencies == [305]


async def test_retry_after_longer_than_the_schedule_is_honoured(make_rig) -> None:
    rig = make_rig(make_settings({"*": "https://h.test/x"}),
                   [AttemptResult(status=429, retry_after_s=60),
                    AttemptResult(status=503, retry_after_s=1), OK])
    await rig.dispatcher.start()
    warning = make_warning(3)
    rig.dispatcher.submit(warning)
    await settle(rig.outbox, warning.webhook_id)
    # 60 s asked > 5 s step; then 1 s asked < 300 s step: the schedule wins
    assert [s.at - T0 for s in rig.sender.sent] == [0, 60, 360]


@pytest.mark.parametrize("status", [301, 302, 400, 401, 404, 429, 500, 502, 504])
async def test_other_statuses_are_retried(make_rig, status: int) -> None:
    rig = make_rig(make_settings({"*": "https://h.test/x"}), [AttemptResult(status), OK])
    await rig.dispatcher.start()
    warning = make_warning(4)
    rig.dispatcher.submit(warning)
    assert await settle(rig.outbox, warning.webhook_id) == "delivered"
    assert len(rig.sender.sent) == 2


async def test_410_disables_the_endpoint_and_drops_later_warnings(make_rig) -> None:
    settings = make_settings({"gone": "https://gone.test/x", "*": "https://ok.test/x"})
    rig = make_rig(settings, [AttemptResult(410), OK])
    await rig.dispatcher.start()
    first = make_warning(1, room_id="gone")
    rig.dispatcher.submit(first)
    assert await settle(rig.outbox, first.webhook_id) == "disabled"
    assert rig.outbox.is_disabled("https://gone.test/x")
    assert rig.dispatcher.submit(make_warning(2, room_id="gone")) == "dropped_disabled"
    other = make_warning(3, room_id="elsewhere")
    assert rig.dispatcher.submit(other) == "queued"
    assert await settle(rig.outbox, other.webhook_id) == "delivered"
    assert [s.url for s in rig.sender.sent] == ["https://gone.test/x", "https://ok.test/x"]
    assert rig.observer.attempts == ["disabled", "delivered"]
    assert rig.observer.submits == ["queued", "dropped_disabled", "queued"]


async def test_pending_warnings_for_an_endpoint_disabled_meanwhile_are_dropped(
        make_rig) -> None:
    settings = make_settings({"*": "https://gone.test/x"})
    rig = make_rig(settings, [FAIL, AttemptResult(410)])
    await rig.dispatcher.start()
    a, b = make_warning(1), make_warning(2)
    rig.dispatcher.submit(a)
    await asyncio.sleep(0)
    rig.dispatcher.submit(b)
    states = {await settle(rig.outbox, a.webhook_id), await settle(rig.outbox, b.webhook_id)}
    assert states == {"disabled"}
    assert len(rig.sender.sent) == 2  # one 500, one 410, nothing after


async def test_refused_address_is_not_retried(make_rig) -> None:
    rig = make_rig(make_settings({"*": "https://h.test/x"}),
                   [AttemptResult(None, "10.0.0.1 is private", refused=True)])
    await rig.dispatcher.start()
    warning = make_warning(5)
    rig.dispatcher.submit(warning)
    assert await settle(rig.outbox, warning.webhook_id) == "refused"
    assert len(rig.sender.sent) == 1 and rig.observer.attempts == ["refused_address"]


async def test_same_id_twice_is_sent_once(make_rig) -> None:
    rig = make_rig(make_settings({"*": "https://h.test/x"}))
    await rig.dispatcher.start()
    warning = make_warning(6)
    assert rig.dispatcher.submit(warning) == "queued"
    assert rig.dispatcher.submit(warning) == "duplicate"
    await settle(rig.outbox, warning.webhook_id)
    assert rig.dispatcher.submit(warning) == "duplicate"  # also after delivery
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(rig.sender.sent) == 1


async def test_room_without_endpoint_is_counted_not_queued(make_rig) -> None:
    rig = make_rig(make_settings({"vip": "https://h.test/x"}))
    await rig.dispatcher.start()
    assert rig.dispatcher.submit(make_warning(1, room_id="other")) == "no_endpoint"
    assert rig.outbox.pending_count() == 0


async def test_a_sender_crash_is_retried(make_rig) -> None:
    rig = make_rig(make_settings({"*": "https://h.test/x"}), [RuntimeError("bug"), OK])
    await rig.dispatcher.start()
    warning = make_warning(7)
    rig.dispatcher.submit(warning)
    assert await settle(rig.outbox, warning.webhook_id) == "delivered"
    assert len(rig.sender.sent) == 2


async def test_submit_does_not_wait_for_a_hanging_host(make_rig) -> None:
    hang = asyncio.Event()

    class Hanging(ScriptedSender):
        async def send(self, url, headers, body):  # type: ignore[no-untyped-def]
            self.sent.append(None)  # type: ignore[arg-type]
            await hang.wait()
            return OK

    clock = FakeClock()
    rig = make_rig(make_settings({"*": "https://h.test/x"}, max_in_flight=2), clock=clock)
    rig.dispatcher._sender = Hanging(clock)  # noqa: SLF001 - swap in the hanging double
    await rig.dispatcher.start()
    for n in range(5):
        assert rig.dispatcher.submit(make_warning(n)) == "queued"  # returns at once
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(rig.dispatcher._sender.sent) == 2  # noqa: SLF001 - max_in_flight
    assert rig.dispatcher.pending_count() == 5
    hang.set()
    for n in range(5):
        assert await settle(rig.outbox, make_warning(n).webhook_id) == "delivered"


async def test_restart_resumes_a_pending_delivery_with_the_same_id(make_rig,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    settings = make_settings({"*": "https://h.test/x"})
    box1 = Outbox(path)
    clock = FakeClock()
    first = make_rig(settings, [FAIL], outbox=box1, clock=clock)
    await first.dispatcher.start()
    warning = make_warning(8)
    first.dispatcher.submit(warning)
    for _ in range(200):
        if first.sender.sent:
            break
        await asyncio.sleep(0)
    await first.dispatcher.close()  # between attempt 1 (failed) and its retry
    box1.close()
    box2 = Outbox(path)
    second = make_rig(settings, [OK], outbox=box2, clock=clock)
    await second.dispatcher.start()
    assert await settle(box2, warning.webhook_id) == "delivered"
    box2.close()
    assert [s.headers["webhook-id"] for s in first.sender.sent + second.sender.sent] == [
        warning.webhook_id, warning.webhook_id]
    assert first.sender.sent[0].body == second.sender.sent[0].body


async def test_finished_ids_are_pruned_after_keep_finished_s(make_rig) -> None:
    settings = make_settings({"*": "https://h.test/x"}, keep_finished_s=60)
    rig = make_rig(settings)
    rig.outbox.add("old", "r", b"{}", now=T0 - 1_000)
    rig.outbox.finish("old", "delivered", now=T0 - 1_000)
    await rig.dispatcher.start()
    for _ in range(20):
        await asyncio.sleep(0)
    assert rig.outbox.get("old") is None


async def test_an_oversized_warning_is_refused_not_raised(make_rig) -> None:
    rig = make_rig(make_settings({"*": "https://h.test/x"}))
    await rig.dispatcher.start()
    assert rig.dispatcher.submit(make_warning(1, suggestion="x" * 30_000)) == "invalid"
    assert rig.outbox.pending_count() == 0 and rig.observer.submits == ["invalid"]
