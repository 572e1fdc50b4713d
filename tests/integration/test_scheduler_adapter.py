"""The live Scheduler port (APScheduler with one wake-up job over a heap of timers) on wall-clock time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from adapters.scheduler import WAKE, ApScheduler
from bot.clock import SystemClock

pytestmark = pytest.mark.timeout(60)


class Timers:
    """An ApScheduler that records which keys fired, in order, and lets a callback arm more from inside a run."""

    def __init__(self) -> None:
        self.clock = SystemClock()
        self.fired: list[str] = []
        self.on_fire: dict[str, object] = {}
        self.scheduler = ApScheduler(self._due, self.clock)
        self._fired_one = asyncio.Event()

    async def _due(self, key: str) -> None:
        self.fired.append(key)
        self._fired_one.set()
        then = self.on_fire.get(key)
        if callable(then):
            then()
        if key == "boom":
            raise RuntimeError("a failing timer must not stop the others")

    def at(self, seconds: float, key: str) -> None:
        self.scheduler.at(self.clock.now() + timedelta(seconds=seconds), key)

    async def until(self, count: int, within: float = 10.0) -> list[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.fired) < count and loop.time() < deadline:
            self._fired_one.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._fired_one.wait(), deadline - loop.time())
        return self.fired


@pytest.fixture
async def timers() -> AsyncIterator[Timers]:
    t = Timers()
    t.scheduler.start()
    yield t
    t.scheduler.shutdown()


def _at(base: datetime, seconds: float) -> datetime:
    return base + timedelta(seconds=seconds)


async def test_timers_fire_once_each_in_due_order_whatever_the_arming_order(timers: Timers) -> None:
    for i, delay in enumerate([0.30, 0.10, 0.20, 0.05, 0.25]):
        timers.at(delay, f"k{i}")
    assert await timers.until(5) == ["k3", "k1", "k2", "k4", "k0"]
    await asyncio.sleep(0.2)
    assert len(timers.fired) == 5
    assert timers.scheduler.pending() == {}


async def test_an_earlier_timer_armed_later_wakes_lien_earlier(timers: Timers) -> None:
    timers.at(5.0, "late")
    timers.at(0.05, "soon")  # earlier than the armed wake-up: it must move
    assert await timers.until(1, within=2.0) == ["soon"]
    assert set(timers.scheduler.pending()) == {"late"}


async def test_cancel_and_rearm_replace_the_timer(timers: Timers) -> None:
    timers.at(0.05, "cancelled")
    timers.at(0.05, "moved")
    timers.at(0.10, "kept")
    timers.scheduler.cancel("cancelled")
    timers.at(0.20, "moved")  # re-arming replaces: it fires once, at the new time
    assert await timers.until(2) == ["kept", "moved"]
    await asyncio.sleep(0.2)
    assert timers.fired == ["kept", "moved"]


async def test_a_timer_armed_while_timers_run_and_a_failing_one_do_not_stop_the_rest(timers: Timers) -> None:
    timers.on_fire["first"] = lambda: timers.at(0.0, "armed-inside")
    timers.at(0.05, "first")
    timers.at(0.06, "boom")
    timers.at(0.3, "after")
    assert await timers.until(4) == ["first", "armed-inside", "boom", "after"]


async def test_pending_lists_one_shot_and_repeating_timers_but_not_the_wake_up(timers: Timers) -> None:
    base = timers.clock.now()
    timers.scheduler.at(_at(base, 60), "nudge")
    timers.scheduler.every(300, "reconcile")
    pending = timers.scheduler.pending()
    assert set(pending) == {"nudge", "reconcile"} and WAKE not in pending
    assert pending["nudge"] == _at(base, 60)
    timers.scheduler.cancel("reconcile")
    assert set(timers.scheduler.pending()) == {"nudge"}


async def test_a_past_due_timer_fires_at_once(timers: Timers) -> None:
    timers.scheduler.at(timers.clock.now() - timedelta(hours=1), "overdue")
    assert await timers.until(1, within=2.0) == ["overdue"]


async def test_many_rearmed_keys_keep_the_heap_bounded(timers: Timers) -> None:
    base = timers.clock.now()
    for round_ in range(20):
        for i in range(500):
            timers.scheduler.at(_at(base, 3600 + round_ + i), f"k{i}")
    assert len(timers.scheduler.pending()) == 500
    assert len(timers.scheduler._heap) <= 2 * 500 + 1024 + 1  # stale entries are compacted away
