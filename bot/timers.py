"""VirtualScheduler: the Scheduler port on virtual time, for simulate, the demo and tests."""

from __future__ import annotations

import heapq
from datetime import datetime


class VirtualScheduler:
    """A heap of (due, seq, key); `pop_due(until)` yields keys in due order, then insertion order.

    Re-arming a key replaces its previous timer; cancelled entries are dropped lazily.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, str]] = []
        self._live: dict[str, tuple[datetime, int]] = {}
        self._seq = 0

    def at(self, when: datetime, key: str) -> None:
        self._seq += 1
        self._live[key] = (when, self._seq)
        heapq.heappush(self._heap, (when, self._seq, key))

    def cancel(self, key: str) -> None:
        self._live.pop(key, None)

    def pending(self) -> dict[str, datetime]:
        """Armed keys and their due times."""
        return {k: v[0] for k, v in self._live.items()}

    def next_due(self) -> datetime | None:
        self._drop_dead()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, until: datetime) -> tuple[datetime, str] | None:
        """The earliest armed timer due at or before `until`, removed; None if there is none."""
        heap = self._heap
        if not heap or heap[0][0] > until:
            return None  # every entry, armed or dead, is later: nothing to drop yet (the common case per event)
        self._drop_dead()
        if not heap or heap[0][0] > until:
            return None
        when, _seq, key = heapq.heappop(self._heap)
        del self._live[key]
        return when, key

    def _drop_dead(self) -> None:
        heap = self._heap
        while heap:
            when, seq, key = heap[0]
            if self._live.get(key) == (when, seq):
                return
            heapq.heappop(heap)

    def __len__(self) -> int:
        return len(self._live)
