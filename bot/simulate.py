"""Replay events on virtual time: the engine of `lien simulate` and `lien demo` (no file I/O here).

Events are processed in input order (the spec's files are in `ts` order; equal stamps keep file order). Every
scheduled job fires at its virtual time, before any later event, and the run continues after the last event
until `until`. Actions are paced per room like the live runtime (one message per `room_pace_seconds`) and emitted
in virtual-time order.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from bot.actions import Action
from bot.clock import VirtualClock
from bot.config import Settings
from bot.cycles import cycle_collector_paused
from bot.engine import Engine, log_skipped
from bot.events import Event
from bot.model import QState, Question
from bot.ports import Store
from bot.timers import VirtualScheduler

#: Default run-on after the last event when `until` is not given (spec: last event + 7 days).
RUN_ON = timedelta(days=7)


@dataclass(slots=True)
class Summary:
    """Counts for the spec's final summary line."""

    events: int = 0
    actions: int = 0
    questions: int = 0
    states: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in QState})
    answered: int = 0
    skipped_bad: int = 0
    unknown_types: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"type": "summary", "events": self.events, "questions": self.questions, "answered": self.answered,
                "actions": self.actions, **{f"state_{k}": v for k, v in self.states.items()},
                "skipped_bad": self.skipped_bad, "unknown_types": self.unknown_types}


class Pacer:
    """One lien message per room per `seconds`: later messages are delayed, never dropped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._free: dict[tuple[str, str], datetime] = {}

    def slot(self, action: Action) -> datetime:
        if action.room is None:
            return action.ts
        key = (action.community, action.room)
        pace = timedelta(seconds=self.settings.room(action.community, action.room).nudges.room_pace_seconds)
        when = max(action.ts, self._free.get(key, action.ts))
        self._free[key] = when + pace
        return when


class Simulation:
    """Drives an Engine on a VirtualClock and VirtualScheduler over a stream of events."""

    def __init__(self, settings: Settings, store: Store, *, start: datetime | None = None, batch: int = 10_000):
        self.clock = VirtualClock(start or datetime.min.replace(tzinfo=UTC))
        self.scheduler = VirtualScheduler()
        self.engine = Engine(settings, store, self.clock, self.scheduler, deliver=False)
        self.pacer = Pacer(settings)
        self.summary = Summary()
        self._batch = batch
        self._out: list[tuple[datetime, int, Action]] = []
        self._seq = 0
        self._started = False

    async def run(self, events: Iterable[Event], emit: Callable[[Action], None], until: datetime | None = None) -> None:
        """Process every event and every timer up to `until` (default: last event + 7 days), emitting actions."""
        with cycle_collector_paused():
            await self._run(events, emit, until)

    async def _run(self, events: Iterable[Event], emit: Callable[[Action], None], until: datetime | None) -> None:
        last: datetime | None = None
        async with self.engine.batch(self._batch):
            for event in events:
                if not self._started:
                    self.clock.set(event.ts)  # the first event starts virtual time
                    log_skipped(await self.engine.start(purge=False))  # a `--db` kept from an earlier replay
                    self._started = True
                await self._advance(event.ts, emit)
                self.clock.set(event.ts)
                self._queue(await self.engine.handle(event))
                self.summary.events += 1
                last = event.ts if last is None or event.ts > last else last
            end = until or ((last + RUN_ON) if last else self.clock.now())
            await self._advance(end, emit)
        self._flush(None, emit)

    async def _advance(self, until: datetime, emit: Callable[[Action], None]) -> None:
        while (due := self.scheduler.pop_due(until)) is not None:
            when, key = due
            self._flush(when, emit)
            self.clock.set(when)
            self._queue(await self.engine.fire(key))
        if self._out and self._out[0][0] <= until:
            self._flush(until, emit)

    def _queue(self, actions: list[Action]) -> None:
        for a in actions:
            when = self.pacer.slot(a)
            self._seq += 1
            heapq.heappush(self._out, (when, self._seq, replace(a, ts=when) if when != a.ts else a))

    def _flush(self, until: datetime | None, emit: Callable[[Action], None]) -> None:
        out = self._out
        while out and (until is None or out[0][0] <= until):
            emit(heapq.heappop(out)[2])
            self.summary.actions += 1

    async def questions(self, page: int = 5000) -> AsyncIterator[Question]:
        """Every tracked question in (id, community) order, streamed from storage; counts them in the summary."""
        after: tuple[str, str] | None = None
        while True:
            async with self.engine.store.transaction() as tx:
                rows = await tx.questions.page(after, page)
            for q in rows:
                self.summary.questions += 1
                self.summary.states[q.state.value] += 1
                self.summary.answered += q.first_answer_ts is not None
                yield q
            if len(rows) < page:
                return
            after = (rows[-1].id, rows[-1].community)
