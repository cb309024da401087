"""What ``verify`` reports: the first problem found, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Fail", "Problem", "Verification", "fail"]


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing wrong with a bundle."""

    target: str
    """``manifest``, ``record``, ``evidence``, ``view``, ``checkpoint`` or ``file``."""
    kind: str
    """``altered``, ``removed``, ``inserted``, ``reordered`` (records, evidence, views);
    ``edited``, ``added``, ``removed`` (manifest fields); ``unreadable``, ``mismatch``..."""
    message: str
    seq: int | None = None
    """The record concerned: the altered/removed one, the one expected where a line was found
    out of order, or (inserted) the genuine record the inserted line stands before."""
    line: int | None = None
    """1-based line of the records file (or row/cue of the view) where it was found."""
    field: str | None = None
    """Manifest field (JSON Pointer) or file name concerned."""

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    problem: Problem | None = None
    room_id: str | None = None
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    key_id: str | None = None
    checkpoint_seq: int | None = None


class Fail(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def fail(target: str, kind: str, message: str, **where: Any) -> Fail:
    return Fail(Problem(target, kind, message, **where))


