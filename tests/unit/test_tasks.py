"""TaskSet: every background task referenced until it ends, failures reported, `stop` cancels and awaits."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref

import pytest

from bot.tasks import TaskSet


async def _fail() -> None:
    await asyncio.sleep(0)
    raise ValueError("boom")


async def _settle(task: asyncio.Task[object]) -> None:
    """Let `task` end and its done-callbacks run."""
    await asyncio.wait({task})
    await asyncio.sleep(0)


async def test_a_failing_task_is_logged_and_removed(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("lien.test.tasks")
    tasks = TaskSet(logger=logger)
    task = tasks.spawn(_fail(), "deliver:c1:r1")
    assert task in tasks and len(tasks) == 1
    with caplog.at_level(logging.ERROR, logger="lien.test.tasks"):
        await _settle(task)
    assert task not in tasks and len(tasks) == 0
    [record] = [r for r in caplog.records if r.name == "lien.test.tasks"]
    assert record.getMessage() == "task 'deliver:c1:r1' failed"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


async def test_on_error_gets_the_name_and_the_exception_instead_of_the_log(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, BaseException]] = []
    tasks = TaskSet(lambda name, exc: seen.append((name, exc)))
    with caplog.at_level(logging.ERROR, logger="bot.tasks"):
        await _settle(tasks.spawn(_fail(), "worker"))
    assert [(name, str(exc)) for name, exc in seen] == [("worker", "boom")]
    assert not [r for r in caplog.records if r.name == "bot.tasks"]


async def test_finished_and_cancelled_tasks_are_removed_without_a_report() -> None:
    seen: list[str] = []
    tasks = TaskSet(lambda name, exc: seen.append(name))
    done = tasks.spawn(asyncio.sleep(0, result=7), "quick")
    cancelled = tasks.spawn(asyncio.sleep(60), "slow")
    cancelled.cancel()
    await _settle(done)
    await _settle(cancelled)
    assert done.result() == 7 and cancelled.cancelled()
    assert len(tasks) == 0 and seen == []


async def test_stop_cancels_and_awaits_pending_tasks() -> None:
    tasks = TaskSet()
    cleaned: list[str] = []
    late: list[asyncio.Task[None]] = []

    async def hang(name: str, spawn_on_cancel: bool = False) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            if spawn_on_cancel:  # a task started while stopping is stopped too
                late.append(tasks.spawn(hang("late"), "late"))
            await asyncio.sleep(0)  # cleanup that itself awaits: stop must wait for it
            cleaned.append(name)

    spawned = [tasks.spawn(hang("a"), "a"), tasks.spawn(hang("b", spawn_on_cancel=True), "b")]
    await asyncio.sleep(0)
    await tasks.stop()
    assert sorted(cleaned) == ["a", "b", "late"]
    assert all(task.cancelled() for task in spawned + late)
    await asyncio.sleep(0)
    assert len(tasks) == 0
    await tasks.stop()  # idempotent on an empty set


async def _orphan() -> None:
    # Waits on a future only its own frame holds: nothing outside reaches the task, so asyncio's weak reference
    # alone would let the garbage collector destroy it while pending.
    await asyncio.get_running_loop().create_future()


async def test_a_running_task_stays_referenced() -> None:
    tasks = TaskSet()
    ref = weakref.ref(tasks.spawn(_orphan(), "orphan"))
    await asyncio.sleep(0)
    gc.collect()
    task = ref()
    assert task is not None and task in tasks and not task.done()
    await tasks.stop()
    assert task.cancelled()
