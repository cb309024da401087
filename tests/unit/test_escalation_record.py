"""alerts.escalation_record and roomwarden.escalations: escalations as CloudEvents, host
warnings into the room, nothing else."""

from __future__ import annotations

import asyncio

import pytest

from alerts.envelope import decode_record
from alerts.escalation_record import ESCALATIONS_TOPIC, escalation_data, escalation_record
from alerts.room_notice import RoomNoticeSink, host_warning_text
from alerts.schemas import ESCALATION, EventValidationError, validate
from policy.escalation import Escalation, Escalator
from roomwarden.escalations import EscalationStage
from tests.escalation_script import EXPECTED, T0, scripted_sequence, summary

SOURCE = "/roomwarden/unit-0"


def test_every_scripted_escalation_is_a_valid_record_that_decodes_back() -> None:
    for escalation in Escalator().observe(scripted_sequence()):
        record = escalation_record(escalation, source=SOURCE)
        assert record.topic == ESCALATIONS_TOPIC
        assert record.key == escalation.room_id.encode()
        attributes, data = decode_record(record.headers, record.value)
        assert attributes["type"] == ESCALATION.type
        assert attributes["id"] == escalation.escalation_id == data["escalation_id"]
        assert data == escalation_data(escalation)
        assert data["alert_ids"][-1] == escalation.alert_ids[-1]


def test_record_is_deterministic_and_uses_speech_time() -> None:
    first = Escalator().observe(scripted_sequence())[0]
    again = Escalator().observe(scripted_sequence())[0]
    assert escalation_record(first, source=SOURCE) == escalation_record(again, source=SOURCE)
    attributes, data = decode_record(escalation_record(first, source=SOURCE).headers,
                                     escalation_record(first, source=SOURCE).value)
    assert data["created_at"] == "2023-11-14T22:13:20.000Z"  # T0, not the wall clock
    assert first.created_at == T0


def test_schema_refuses_an_unknown_action() -> None:
    data = escalation_data(Escalator().observe(scripted_sequence())[0]) | {"action": "ban"}
    with pytest.raises(EventValidationError, match="action"):
        validate("escalation", data)


class RecordingNotifier:
    """A fake at the Janus seam: records what would be posted into each room."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def notify(self, room_id: str, text: str) -> None:
        self.sent.append((room_id, text))

    async def close(self) -> None:
        pass


def test_stage_notifies_host_warnings_only_and_keeps_order() -> None:
    notifier = RecordingNotifier()
    seen: list[Escalation] = []
    outcomes: list[str] = []
    notices = RoomNoticeSink(notifier, on_outcome=outcomes.append)
    stage = EscalationStage(Escalator(), sink=None, source=SOURCE, host_warnings=[notices],
                            on_escalation=seen.append)

    async def run() -> None:
        for alert in scripted_sequence():  # one transcript's alerts at a time
            await stage.handle([alert])
        await stage.close()
        await notices.close()

    asyncio.run(run())
    assert summary(stage.escalations) == EXPECTED
    assert seen == stage.escalations
    warnings = [e for e in stage.escalations if e.action == "host_warning"]
    assert notifier.sent == [(e.room_id, host_warning_text(e)) for e in warnings]
    assert len(notifier.sent) == 3  # 40-alert rant included: alice, dave, dave after an hour
    assert outcomes == ["sent"] * 3
