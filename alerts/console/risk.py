"""The per-room risk view: each room's and speaker's decaying risk, from escalation records.

Every escalation (``roomwarden.escalations.v1``) carries the ladder's ``risk_room`` and
``risk_speaker`` right after its triggering alert, at speech time ``created_at``. The board keeps
the latest of each and shows it decayed to *now* with the ladder's half-life
(:func:`policy.escalation.decayed`), so a room that went quiet cools down on screen. Between
escalations (cooldowns) the ladder may hold a higher score than the last escalation said: the view
is the last decision's number, decayed -- a lower bound, and the number the moderator was shown.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from policy.escalation import decayed

__all__ = ["RiskBoard", "parse_time"]

_SEEN_PER_ROOM = 1000


def parse_time(value: str) -> float:
    """RFC 3339 (``...Z`` or offset) -> Unix seconds.

    Raises:
        ValueError: not a date-time.
    """
    return datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00")).timestamp()


@dataclass(slots=True)
class _Score:
    value: float
    at: float
    action: str


@dataclass(slots=True)
class _Room:
    room: _Score
    speakers: dict[str, _Score] = field(default_factory=dict)
    reason: str = ""
    escalations: int = 0
    seen: dict[str, None] = field(default_factory=dict)
    """Recent escalation ids (insertion ordered), against redelivery."""


class RiskBoard:
    """Latest risk per room and speaker (LRU-bounded to ``max_rooms``).

    Args:
        half_life_s: the escalation ladder's half-life.
        max_rooms: rooms kept; the least recently escalated is forgotten first.
        clock: wall clock, for decaying to now.
    """

    def __init__(self, half_life_s: float, *, max_rooms: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self._half_life_s = half_life_s
        self._max_rooms = max_rooms
        self._clock = clock
        self._rooms: OrderedDict[str, _Room] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rooms)

    def observe(self, escalation: Mapping[str, Any]) -> bool:
        """Take one escalation's data (schema ``escalation.v1.json``). Returns False for a
        duplicate (same ``escalation_id``), which changes nothing.

        Raises:
            KeyError, ValueError, TypeError: the data lacks a field or has a bad one.
        """
        room_id = str(escalation["room_id"])
        speaker_id = str(escalation["speaker_id"])
        at = parse_time(str(escalation["created_at"]))
        action = str(escalation["action"])
        risk_room = float(escalation["risk_room"])
        risk_speaker = float(escalation["risk_speaker"])
        escalation_id = str(escalation["escalation_id"])
        room = self._rooms.pop(room_id, None)
        if room is None:
            room = _Room(_Score(risk_room, at, action))
        self._rooms[room_id] = room
        while len(self._rooms) > self._max_rooms:
            self._rooms.popitem(last=False)
        if escalation_id in room.seen:
            return False
        room.seen[escalation_id] = None
        if len(room.seen) > _SEEN_PER_ROOM:  # redelivery is of recent records: forget the oldest
            del room.seen[next(iter(room.seen))]
        room.escalations += 1
        if at >= room.room.at:  # an older escalation arriving late does not roll back
            room.room = _Score(risk_room, at, action)
            room.reason = str(escalation.get("reason", ""))
        if speaker_id:
            known = room.speakers.get(speaker_id)
            if known is None or at >= known.at:
                room.speakers[speaker_id] = _Score(risk_speaker, at, action)
        return True

    def room(self, room_id: str, now: float | None = None) -> dict[str, Any] | None:
        """One room's view (see :meth:`snapshot`), or None if it never escalated."""
        room = self._rooms.get(room_id)
        return None if room is None else self._view(room_id, room,
                                                     self._clock() if now is None else now)

    def snapshot(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every room, riskiest first: ``{room_id, risk_room, last_action, last_reason,
        last_escalation_at, escalations, speakers: [{speaker_id, risk_speaker, last_action,
        last_escalation_at}]}`` with risks decayed to ``now`` (rounded to 1e-3)."""
        now = self._clock() if now is None else now
        views = [self._view(room_id, room, now) for room_id, room in self._rooms.items()]
        return sorted(views, key=lambda v: (-float(v["risk_room"]), str(v["room_id"])))

    def _view(self, room_id: str, room: _Room, now: float) -> dict[str, Any]:
        speakers: list[dict[str, Any]] = [
            {"speaker_id": speaker_id,
             "risk_speaker": round(decayed(s.value, now - s.at, self._half_life_s), 3),
             "last_action": s.action, "last_escalation_at": s.at}
            for speaker_id, s in room.speakers.items()
        ]
        speakers.sort(key=lambda s: (-s["risk_speaker"], s["speaker_id"]))
        return {
            "room_id": room_id,
            "risk_room": round(decayed(room.room.value, now - room.room.at, self._half_life_s), 3),
            "last_action": room.room.action,
            "last_reason": room.reason,
            "last_escalation_at": room.room.at,
            "escalations": room.escalations,
            "speakers": speakers,
        }
