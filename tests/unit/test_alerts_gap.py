"""Stream gaps as CloudEvents records: schema-valid, strict, deterministic ids."""

from __future__ import annotations

import pytest

from alerts.envelope import decode_record, gap_record
from alerts.schemas import GAP, EventValidationError, schema, validate, validate_attributes
from ingest.frames import StreamGap

SOURCE = "/roomwarden/test-0"
T0 = 1_763_755_200.0  # 2025-11-21T20:00:00Z


def _gap(**kw: object) -> StreamGap:
    fields: dict[str, object] = {"room_id": "1234", "speaker_id": "", "start_time": T0,
                                 "end_time": T0 + 4.25, "reason": "janus_unreachable",
                                 "source": "janus"}
    fields.update(kw)
    return StreamGap(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("speaker", ["", "7788"])
def test_gap_record_validates(speaker: str) -> None:
    gap = _gap(speaker_id=speaker)
    record = gap_record(gap, source=SOURCE)
    assert record.topic == "roomwarden.gaps.v1"
    assert record.key == b"1234"
    attrs, data = decode_record(record.headers, record.value)
    validate_attributes(attrs)
    validate("gap", data)
    assert attrs["type"] == "io.roomwarden.gap.v1" == GAP.type
    assert attrs["id"] == gap.gap_id == data["gap_id"]
    assert attrs["subject"] == "rooms/1234"
    assert attrs["time"].startswith("2025-11-21T20:00:04.250")  # ce_time = the gap's end
    assert data == {"gap_id": gap.gap_id, "room_id": "1234", "speaker_id": speaker,
                    "start_time": "2025-11-21T20:00:00.000Z",
                    "end_time": "2025-11-21T20:00:04.250Z", "duration_s": 4.25,
                    "reason": "janus_unreachable", "source": "janus"}
    assert schema("gap")["$id"] == GAP.dataschema


def test_gap_ids_are_deterministic() -> None:
    assert _gap().gap_id == _gap(end_time=T0 + 9).gap_id  # the end does not identify it
    assert _gap().gap_id != _gap(speaker_id="1").gap_id
    assert _gap().gap_id != _gap(reason="session_lost").gap_id
    assert _gap().gap_id != _gap(start_time=T0 + 0.001).gap_id
    assert gap_record(_gap(), source=SOURCE, topic="t").topic == "t"


def test_gap_schema_is_strict() -> None:
    _, data = decode_record(*(lambda r: (r.headers, r.value))(gap_record(_gap(), source=SOURCE)))
    for bad in ({**data, "extra": 1}, {k: v for k, v in data.items() if k != "reason"},
                {**data, "room_id": ""}, {**data, "duration_s": -1},
                {**data, "reason": "Not A Label"}, {**data, "start_time": "yesterday"},
                {**data, "gap_id": "xyz"}):
        with pytest.raises(EventValidationError):
            validate("gap", bad)
