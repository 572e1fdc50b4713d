"""The Scheduler port on APScheduler 3.x's AsyncIOScheduler: only a timer, the database row is the truth.

One-shot timers (a nudge per question and level: tens of thousands in a busy deployment) live in a heap here, and
a single APScheduler job wakes lien at the earliest of them: adding an APScheduler job costs a signature check, a
trigger and a sorted insert, which made arming a timer cost more than reading the message that needed it.
Repeating timers (reconcile, digest checks) are ordinary APScheduler interval jobs.

Memory job store (no pickling, no duplicates on restart): the engine re-arms timers from rows at start and a
periodic reconcile pass re-creates any lost one. APScheduler drops a `date` job whose run time is already past
under the default grace time, so jobs are added with `misfire_grace_time=None` and `coalesce=True`.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.ports import Clock

log = logging.getLogger(__name__)

#: The APScheduler job that runs the due one-shot timers.
WAKE = "lien:wake"


class ApScheduler:
    """`at(when, key)` arms (or re-arms) a one-shot timer that calls `on_due(key)`; `cancel(key)` disarms it.

    Due timers run one after another, earliest first; `clock` says which are due.
    """

    def __init__(self, on_due: Callable[[str], Awaitable[None]], clock: Clock) -> None:
        self._on_due = on_due
        self._clock = clock
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        #: Armed one-shot timers: key -> when. The heap may also hold stale entries (cancelled or re-armed keys):
        #: an entry counts only while it matches this mapping.
        self._due: dict[str, datetime] = {}
        self._heap: list[tuple[datetime, str]] = []
        self._wake_at: datetime | None = None
        self._running = False

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def at(self, when: datetime, key: str) -> None:
        self._due[key] = when
        heapq.heappush(self._heap, (when, key))
        if len(self._heap) > 2 * len(self._due) + 1024:
            # Re-armed and cancelled keys leave stale entries behind: rebuild before they outnumber the live ones.
            self._heap = [(w, k) for k, w in self._due.items()]
            heapq.heapify(self._heap)
        if self._wake_at is None or when < self._wake_at:
            self._arm(when)

    def every(self, seconds: float, key: str) -> None:
        """A repeating timer (reconcile pass, digest checks)."""
        self._scheduler.add_job(self._run, "interval", seconds=seconds, id=key, args=[key], replace_existing=True,
                                misfire_grace_time=None, coalesce=True, max_instances=1)

    def cancel(self, key: str) -> None:
        if self._due.pop(key, None) is None:
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(key)

    def pending(self) -> dict[str, datetime]:
        """Armed keys and their next run times."""
        jobs = {job.id: job.next_run_time for job in self._scheduler.get_jobs() if job.id != WAKE}
        return {**jobs, **self._due}

    def _arm(self, when: datetime) -> None:
        self._wake_at = when
        # No instance limit: a wake-up that finds a pass under way returns at once, but APScheduler would skip it
        # (and lien would never be woken again) if it were limited.
        self._scheduler.add_job(self._wake, "date", run_date=when, id=WAKE, replace_existing=True,
                                misfire_grace_time=None, coalesce=True, max_instances=1_000_000)

    def _pop_due(self, now: datetime) -> str | None:
        """The earliest armed key due at `now` (disarmed), or None; drops stale heap entries on the way."""
        heap, due = self._heap, self._due
        while heap and heap[0][0] <= now:
            when, key = heapq.heappop(heap)
            if due.get(key) == when:
                del due[key]
                return key
        return None

    async def _wake(self) -> None:
        self._wake_at = None
        if self._running:
            return  # the pass under way runs what is due and arms the next wake-up
        self._running = True
        try:
            while (key := self._pop_due(self._clock.now())) is not None:
                await self._run(key)
        finally:
            self._running = False
            heap = self._heap
            while heap and self._due.get(heap[0][1]) != heap[0][0]:
                heapq.heappop(heap)
            if heap and (self._wake_at is None or heap[0][0] < self._wake_at):
                self._arm(heap[0][0])

    async def _run(self, key: str) -> None:
        try:
            await self._on_due(key)
        except Exception:
            log.exception("timer %s failed", key)
