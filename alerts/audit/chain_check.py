"""Walking a room's stored chain (``AuditStore.verify_room``): the store's own sanity check.

From the anchor (genesis, or the last purged entry's hash) to the head: contiguous seq, each
``prev_hash`` linking, each ``entry_hash`` recomputed from the content, each stored evidence
blob hashing to its name, the room row's head matching the chain's end; every stored checkpoint
at or after the anchor signed by a key the store knows and naming the chain's head at its seq;
every purge record's signature valid, and -- when the chain does not start at genesis -- one of
them naming exactly the anchor (so a prefix deleted without the key is reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from alerts.audit.checkpoints import purge_signature_ok, verify_checkpoint
from alerts.audit.entries import chain_hash, genesis_hash, leaf_hash, sha256_hex

if TYPE_CHECKING:
    from alerts.audit.store import AuditStore

__all__ = ["ChainReport", "verify_room"]


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What :meth:`AuditStore.verify_room` found."""

    room_id: str
    ok: bool
    entries: int
    """Entries walked."""
    checkpoints: int
    """Checkpoints whose signature and head were checked."""
    problem: str | None = None
    bad_seq: int | None = None


def verify_room(store: AuditStore, room_id: str) -> ChainReport:
    state = store.room_state(room_id)
    if state is None:
        return ChainReport(room_id, False, 0, 0, f"room {room_id!r} not in the store")
    keys = store.public_keys()
    heads = {state.anchor_seq - 1: state.anchor_hash}
    prev, expected, walked = state.anchor_hash, state.anchor_seq, 0
    anchor_explained = state.anchor_seq == 0 and state.anchor_hash == genesis_hash(room_id)

    def bad(problem: str, seq: int | None) -> ChainReport:
        return ChainReport(room_id, False, walked, 0, problem, seq)

    for entry in store.iter_entries(room_id, state.anchor_seq):
        if entry.seq != expected:
            return bad(f"seq {expected} missing (next stored is {entry.seq})", expected)
        if entry.prev_hash != prev:
            return bad(f"seq {entry.seq}: prev_hash does not link to seq {entry.seq - 1}",
                       entry.seq)
        if chain_hash(prev, leaf_hash(entry.leaf())) != entry.entry_hash:
            return bad(f"seq {entry.seq}: content does not match entry_hash", entry.seq)
        if entry.blob_sha256 is not None:
            blob = store.blob(entry.blob_sha256)
            if blob is not None and sha256_hex(blob) != entry.blob_sha256:
                return bad(f"seq {entry.seq}: evidence blob does not match its sha256",
                           entry.seq)
        if entry.kind == "purge":
            if not purge_signature_ok(entry.data, keys):
                return bad(f"seq {entry.seq}: purge record signature does not verify",
                           entry.seq)
            purged = entry.data.get("purged") or {}
            if (purged.get("last_seq"), purged.get("last_hash")) == (
                    state.anchor_seq - 1, state.anchor_hash):
                anchor_explained = True
        prev, expected, walked = entry.entry_hash, expected + 1, walked + 1
        heads[entry.seq] = entry.entry_hash
    if expected != state.next_seq or prev != state.head_hash:
        return bad(f"room head says seq {state.next_seq - 1}, chain ends at {expected - 1}",
                   expected)
    if not anchor_explained:
        return bad(f"chain starts at seq {state.anchor_seq} but no signed purge record "
                   f"names what went before it", state.anchor_seq)
    checked = 0
    for checkpoint in store.checkpoints(room_id, min_seq=state.anchor_seq - 1):
        public = keys.get(checkpoint.key_id)
        if public is None or not verify_checkpoint(checkpoint, public):
            return ChainReport(room_id, False, walked, checked,
                               f"checkpoint at seq {checkpoint.seq} signed "
                               f"{checkpoint.signed_at}: bad signature", checkpoint.seq)
        if heads.get(checkpoint.seq) != checkpoint.head_hash:
            return ChainReport(room_id, False, walked, checked,
                               f"checkpoint at seq {checkpoint.seq} names another head",
                               checkpoint.seq)
        checked += 1
    return ChainReport(room_id, True, walked, checked)
