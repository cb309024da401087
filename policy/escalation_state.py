"""Bounded, decaying state for :mod:`policy.escalation`: a risk score that halves every
half-life of speech time, and an LRU map whose entries also expire after a TTL of speech time.

Both run on the caller's clock (speech time from the alerts), never the wall clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["BoundedStates", "DecayingRisk", "decayed"]

K = TypeVar("K")
V = TypeVar("V")


def decayed(value: float, elapsed_s: float, half_life_s: float) -> float:
    """``value`` after ``elapsed_s`` of exponential decay (negative elapsed: no change)."""
    return value * 0.5 ** (max(elapsed_s, 0.0) / half_life_s)


@dataclass(slots=True)
class DecayingRisk:
    """A decaying score: ``value`` as of ``at`` (speech time)."""

    value: float = 0.0
    at: float = -math.inf

    def add(self, weight: float, now: float, half_life_s: float) -> float:
        if self.at != -math.inf:
            self.value = decayed(self.value, now - self.at, half_life_s)
        self.at = max(self.at, now)
        self.value += weight
        return self.value


class BoundedStates(Generic[K, V]):
    """An LRU map with a speech-time TTL: the least recently touched entry goes first."""

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._max = max_entries
        self._ttl = ttl_s
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def touch(self, key: K, now: float, factory: Callable[[], V]) -> V:
        self._expire(now)
        entry = self._items.pop(key, None)
        value = factory() if entry is None else entry[1]
        self._items[key] = (max(now, entry[0]) if entry is not None else now, value)
        while len(self._items) > self._max:
            self._items.popitem(last=False)
            self.evicted += 1
        return value

    def _expire(self, now: float) -> None:
        # Oldest first: stop at the first entry still alive (touch order ~ time order).
        while self._items:
            key, (seen, _) = next(iter(self._items.items()))
            if now - seen <= self._ttl:
                return
            del self._items[key]
            self.evicted += 1
