"""Retention: purge a room's oldest entries, leaving a signed ``purge`` record of what went.

What goes: the longest *prefix* of the room's chain (from its anchor) recorded before the
cutoff -- never a hole in the middle, so what is kept is still one contiguous chain. Age is
``recorded_at`` (the store's own clock, non-decreasing along the chain in practice; an entry
recorded late about an old event is kept for the full period after it was recorded).

How the chain still verifies: entries are never re-hashed. The first kept entry's
``prev_hash`` is the last purged entry's ``entry_hash``, which becomes the room's *anchor*
(``audit_rooms.anchor_seq`` / ``anchor_hash``). In the same transaction a ``purge`` entry is
appended to the room's chain (so the purge itself is tamper-evident) whose data says::

    {"reason": "retention", "room_id": ..., "cutoff": <Unix s>, "retention_days": 180.0,
     "purged": {"count", "first_seq", "last_seq", "first_hash", "last_hash",
                "first_recorded_at", "last_recorded_at", "kinds": {kind: n},
                "evidence_deleted": n},
     "key_id": ..., "signature": <Ed25519 over every other field, tag roomwarden.audit.purge.v1>}

``purged.last_hash`` is the new anchor; :meth:`AuditStore.verify_room` requires a signed purge
record naming the anchor whenever the chain does not start at the genesis hash, so a prefix
deleted behind the store's back (without the key) is reported. Evidence clips referenced only
by purged entries are deleted with them. A checkpoint is signed right after each purge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from alerts.audit.checkpoints import PURGE_TAG
from alerts.audit.entries import AuditEntry, StoredEntry
from alerts.audit.store import AuditStore, _Pending

__all__ = ["PurgeReport", "purge_expired", "purge_room"]

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """One room's purge: the record appended, and the numbers in it."""

    room_id: str
    count: int
    first_seq: int
    last_seq: int
    evidence_deleted: int
    record: StoredEntry
    """The signed ``purge`` entry appended to the room's chain."""


def purge_expired(store: AuditStore, retention_days: float, *, now: float | None = None
                  ) -> list[PurgeReport]:
    """Purge every room's entries recorded more than ``retention_days`` ago."""
    if not (retention_days > 0 and math.isfinite(retention_days)):
        raise ValueError(f"retention_days must be a positive number, got {retention_days!r}")
    cutoff = (store._clock() if now is None else now) - retention_days * DAY_S
    reports = []
    for room_id in store.rooms():
        report = purge_room(store, room_id, before=cutoff, retention_days=retention_days)
        if report is not None:
            reports.append(report)
    return reports


def purge_room(store: AuditStore, room_id: str, *, before: float,
               retention_days: float | None = None) -> PurgeReport | None:
    """Purge the room's chain prefix recorded before ``before`` (Unix s); None if nothing is
    that old. One transaction: delete, move the anchor, append the signed purge record."""
    with store._lock, store._write() as tx:
        room = store._room_for_write(tx, room_id)
        row = tx.execute("SELECT MIN(seq) FROM audit_entries WHERE room_id = ? AND seq >= ? "
                         "AND recorded_at >= ?", (room_id, room.anchor_seq, before)).one()
        stop = room.next_seq if row is None or row[0] is None else int(row[0])
        last = stop - 1
        if last < room.anchor_seq:
            return None
        first = room.anchor_seq
        span = (room_id, first, last)
        ends = tx.execute("SELECT seq, entry_hash, recorded_at FROM audit_entries "
                          "WHERE room_id = ? AND seq IN (?, ?) ORDER BY seq", span).all()
        kinds = {kind: int(n) for kind, n in tx.execute(
            "SELECT kind, COUNT(*) FROM audit_entries WHERE room_id = ? AND seq >= ? AND "
            "seq <= ? GROUP BY kind ORDER BY kind", span).all()}
        # Clips referenced only by the purged entries (content-addressed: another room or a
        # kept entry may hold the same audio).
        orphan_clips = [r[0] for r in tx.execute(
            "SELECT DISTINCT blob_sha256 FROM audit_entries p WHERE p.room_id = ? AND "
            "p.seq >= ? AND p.seq <= ? AND p.blob_sha256 IS NOT NULL AND NOT EXISTS ("
            "SELECT 1 FROM audit_entries k WHERE k.blob_sha256 = p.blob_sha256 AND NOT "
            "(k.room_id = p.room_id AND k.seq >= ? AND k.seq <= ?))",
            (*span, first, last)).all()]
        deleted = 0
        for sha in orphan_clips:
            tx.execute("DELETE FROM audit_blobs WHERE sha256 = ?", (sha,))
            deleted += 1
        tx.execute("DELETE FROM audit_entries WHERE room_id = ? AND seq >= ? AND seq <= ?",
                   span)
        first_row, last_row = ends[0], ends[-1]
        now = store._clock()
        data: dict[str, Any] = {
            "reason": "retention", "room_id": room_id, "cutoff": float(before),
            "retention_days": None if retention_days is None else float(retention_days),
            "purged": {"count": last - first + 1, "first_seq": first, "last_seq": last,
                       "first_hash": first_row[1], "last_hash": last_row[1],
                       "first_recorded_at": float(first_row[2]),
                       "last_recorded_at": float(last_row[2]), "kinds": kinds,
                       "evidence_deleted": deleted},
            "key_id": store.key.key_id}
        data["signature"] = store.key.sign(PURGE_TAG, data)
        tx.execute("UPDATE audit_rooms SET anchor_seq = ?, anchor_hash = ? WHERE room_id = ?",
                   (last + 1, last_row[1], room_id))
        entry = AuditEntry(room_id, "purge", f"{room_id}/{first}-{last}", now, data)
        (record,) = store._append_in(tx, [_Pending(entry, data, now, None)], now)
    store.checkpoint(room_id)
    return PurgeReport(room_id, last - first + 1, first, last, deleted, record)
