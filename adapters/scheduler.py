"""The Scheduler port on APScheduler 3.x's AsyncIOScheduler: only a timer, the database row is the truth.

Memory job store (no pickling, no duplicates on restart): the engine re-arms timers from rows at start and a
periodic reconcile pass re-creates any lost one. APScheduler drops a `date` job whose run time is already past
under the default grace time, so jobs are added with `misfire_grace_time=None` and `coalesce=True`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)


class ApScheduler:
    """`at(when, key)` arms (or re-arms) a one-shot timer that calls `on_due(key)`; `cancel(key)` disarms it."""

    def __init__(self, on_due: Callable[[str], Awaitable[None]]) -> None:
        self._on_due = on_due
        self._scheduler = AsyncIOScheduler(timezone="UTC")

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def at(self, when: datetime, key: str) -> None:
        self._scheduler.add_job(
            self._run, "date", run_date=when, id=key, args=[key], replace_existing=True,
            misfire_grace_time=None, coalesce=True, max_instances=1,
        )

    def every(self, seconds: float, key: str) -> None:
        """A repeating timer (reconcile pass, digest checks)."""
        self._scheduler.add_job(self._run, "interval", seconds=seconds, id=key, args=[key], replace_existing=True,
                                misfire_grace_time=None, coalesce=True, max_instances=1)

    def cancel(self, key: str) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(key)

    def pending(self) -> dict[str, datetime]:
        """Armed keys and their next run times."""
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    async def _run(self, key: str) -> None:
        try:
            await self._on_due(key)
        except Exception:
            log.exception("timer %s failed", key)
