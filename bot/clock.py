"""The clock port's implementations: time is injected, never read ad hoc."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """Wall-clock time, UTC-aware."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """Time that only moves when told to; for simulate, the demo and tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs a tz-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        """Move to `when`; time never goes backwards."""
        if when > self._now:
            self._now = when
