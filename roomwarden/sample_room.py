"""The bundled sample room: three speakers' WAV files and the script they speak.

``roomwarden/samples/room.json`` lists every utterance with its speaker, time range and the
alert the default rule pack must raise for it (or ``null`` for benign talk and near-misses).
The demo, the integration tests and the benchmarks all check against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SAMPLES_DIR = Path(__file__).parent / "samples"


@dataclass(frozen=True, slots=True)
class Utterance:
    speaker: str
    text: str
    start_s: float
    end_s: float
    category: str | None
    rule_id: str | None


@dataclass(frozen=True, slots=True)
class SampleRoom:
    room_id: str
    speakers: dict[str, Path]
    utterances: tuple[Utterance, ...]

    @property
    def expected(self) -> list[Utterance]:
        return [u for u in self.utterances if u.category is not None]

    @property
    def near_misses(self) -> list[Utterance]:
        return [u for u in self.utterances if u.category is None]

    @property
    def duration_s(self) -> float:
        return max(u.end_s for u in self.utterances)


def load_sample_room(directory: Path = SAMPLES_DIR) -> SampleRoom:
    data = json.loads((directory / "room.json").read_text())
    utterances = []
    for u in data["utterances"]:
        expect = u.get("expect") or {}
        utterances.append(Utterance(u["speaker"], u["text"], float(u["start_s"]),
                                    float(u["end_s"]), expect.get("category"),
                                    expect.get("rule_id")))
    speakers = {name: directory / file for name, file in data["speakers"].items()}
    return SampleRoom(data["room_id"], speakers, tuple(utterances))


@dataclass(frozen=True, slots=True)
class Observed:
    """An alert as seen on the wire (or in-process), reduced to what the check needs."""

    speaker: str
    category: str
    rule_id: str
    start_s: float
    end_s: float


def observed_from_events(events: Iterable[dict[str, object]], room_id: str) -> list[Observed]:
    """Reduce alert event data (as decoded from Kafka or ``moderate --json``) for checking."""
    out = []
    for data in events:
        if data["room_id"] != room_id:
            continue
        speech = data["speech"]
        assert isinstance(speech, dict)
        out.append(Observed(str(data["speaker_id"]), str(data["category"]),
                            str(data["rule_id"]), float(speech["start_offset_s"]),
                            float(speech["end_offset_s"])))
    return out


@dataclass
class Check:
    found: list[tuple[Utterance, Observed]]
    missing: list[Utterance]
    unexpected: list[Observed]
    duplicates: list[Observed]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.duplicates)


def check_alerts(room: SampleRoom, observed: Iterable[Observed], slack_s: float = 0.6) -> Check:
    """Match observed alerts to expected utterances: same speaker and rule, overlapping time.

    Every expected utterance must be matched exactly once; anything else is unexpected (an alert
    on benign talk or a near-miss) or a duplicate.
    """
    found: list[tuple[Utterance, Observed]] = []
    unexpected: list[Observed] = []
    duplicates: list[Observed] = []
    matched: set[Utterance] = set()
    for o in observed:
        hit = next((u for u in room.expected
                    if u.speaker == o.speaker and u.rule_id == o.rule_id
                    and o.start_s < u.end_s + slack_s and o.end_s > u.start_s - slack_s), None)
        if hit is None:
            unexpected.append(o)
        elif hit in matched:
            duplicates.append(o)
        else:
            matched.add(hit)
            found.append((hit, o))
    missing = [u for u in room.expected if u not in matched]
    return Check(found, missing, unexpected, duplicates)
