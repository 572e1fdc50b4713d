"""Background tasks that stay referenced until they end, whose failure is reported, and that `stop` cancels.

asyncio keeps only a weak reference to a task, so a bare `create_task` may be garbage-collected while it runs, and
its exception surfaces (if ever) only when it is collected. The runtime and the adapters start every background
task through a `TaskSet` instead (maubot's `scheduler.py` pattern).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Told the failed task's name (its creation site) and its exception; never called for a cancelled task.
OnError = Callable[[str, BaseException], None]


class TaskSet:
    """Holds each spawned task until it is done, then drops it; a failure goes to `on_error` (default: logged)."""

    def __init__(self, on_error: OnError | None = None, *, logger: logging.Logger = log) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._logger = logger
        self._on_error = on_error or self._log

    def spawn(self, coro: Coroutine[Any, Any, _T], name: str) -> asyncio.Task[_T]:
        """Start `coro` as a task called `name`, kept referenced until it ends."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task: object) -> bool:
        return task in self._tasks

    async def stop(self) -> None:
        """Cancel every pending task and wait until all have ended, also those spawned while stopping."""
        while pending := [task for task in self._tasks if not task.done()]:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._on_error(task.get_name(), exc)

    def _log(self, name: str, exc: BaseException) -> None:
        self._logger.error("task %r failed", name, exc_info=exc)
