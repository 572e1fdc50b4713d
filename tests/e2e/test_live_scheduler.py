"""The live runtime in-process on wall-clock time: APScheduler timers, a real SqlStore on SQLite, the JSONL bridge.

Wired as `lien run` wires it (engine started, adapter caught up, then timers), but in the test's event loop, so the
test can stop and restart it, look at the scheduler and drop a job behind the engine's back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.jsonl_bridge import JsonlBridge
from adapters.scheduler import ApScheduler
from bot.clock import SystemClock, VirtualClock
from bot.config import Settings
from bot.engine import Engine
from bot.events import Message
from bot.model import Nudge, NudgeState, nudge_key
from bot.runtime import Runtime
from bot.timers import VirtualScheduler
from storage.db import make_engine
from storage.migrate import upgrade
from storage.repositories import SqlStore

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

#: How late a timer may fire on a loaded machine and still count as "on time".
LATE = 1.0
C, ROOM = "c", "general"


def _settings(l1: float, l2: float = 60, l3: float = 120, **nudges: Any) -> Settings:
    """Ladder in seconds; no quiet hours, no pacing."""
    return Settings.model_validate({"nudges": {
        "level1_floor_minutes": l1 / 60, "level2_floor_minutes": l2 / 60, "level3_minutes": l3 / 60,
        "room_pace_seconds": 0.0, "quiet_hours": {"enabled": False}, **nudges,
    }})


def _question(n: int, ts: datetime) -> Message:
    return Message(C, ROOM, f"q{n}", ts, f"asker{n}", f"How do I configure the proxy number {n} for the build?")


def _append(path: Path, message: Message) -> None:
    record = {"type": "message", "community": message.community, "room": message.room, "id": message.id,
              "ts": message.ts.isoformat(), "author": message.author, "text": message.text}
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _outbox(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class Live:
    """One run of lien in this event loop; `stop()` and a new `Live` on the same directory is a restart."""

    def __init__(self, tmp: Path, settings: Settings) -> None:
        self.tmp, self.settings = tmp, settings
        self.inbox, self.outbox = tmp / "inbox.jsonl", tmp / "outbox.jsonl"
        self.clock = SystemClock()
        self.db = make_engine(f"sqlite+aiosqlite:///{tmp / 'lien.db'}")
        self.store = SqlStore(self.db)
        self.scheduler = ApScheduler(self._on_due, self.clock)
        self.engine = Engine(settings, self.store, self.clock, self.scheduler)
        self.bridge = JsonlBridge(self.inbox, self.outbox, poll_seconds=0.02)
        self.runtime = Runtime(self.engine, [self.bridge], self.clock)
        self.stopped = False
        self.skipped: list[Nudge] = []  # what `Engine.start` skipped as overdue

    async def _on_due(self, key: str) -> None:
        await self.runtime.on_timer(key)

    async def start(self) -> Live:
        await upgrade(self.db)
        self.skipped = await self.engine.start()
        await self.bridge.start(self.runtime.handler_for(self.bridge))
        self.scheduler.start()
        await self.runtime.deliver_unsent()
        return self

    async def stop(self) -> None:
        self.stopped = True
        self.scheduler.shutdown()
        await self.runtime.stop()
        await self.bridge.stop()
        await self.db.dispose()

    async def ask(self, n: int) -> datetime:
        """Write question n into the inbox and wait until lien has planned its first nudge; returns its ts."""
        ts = self.clock.now()
        _append(self.inbox, _question(n, ts))
        await self.wait_for(lambda: nudge_key(C, f"q{n}", 1) in self.scheduler.pending(), 5)
        # The timer is armed inside the event's transaction: the row is there once that transaction committed.
        for _ in range(500):
            if await self.nudge_row(n, 1) is not None:
                return ts
            await asyncio.sleep(0.01)
        raise AssertionError(f"q{n}: no nudge row")

    async def nudge_row(self, n: int, level: int) -> Any:
        async with self.store.transaction() as tx:
            rows = await tx.nudges.for_question(C, f"q{n}")
        return next((r for r in rows if r.level == level), None)

    async def wait_for(self, predicate: Any, within: float) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.01)

    async def delivered(self, n: int, level: int, within: float) -> dict[str, Any]:
        """Wait for the nudge line of question n at `level` in the outbox, and return it."""
        def found() -> list[dict[str, Any]]:
            return [r for r in _outbox(self.outbox) if r["question"] == f"q{n}" and r["level"] == level]

        await self.wait_for(lambda: bool(found()), within)
        [line] = found()
        return line


@pytest.fixture
async def live_runs(tmp_path: Path) -> AsyncIterator[list[Live]]:
    runs: list[Live] = []
    yield runs
    for run in runs:
        if not run.stopped:
            await run.stop()


def _ts(line: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(line["ts"].replace("Z", "+00:00"))


async def test_nudges_fire_at_their_wall_clock_time(tmp_path: Path, live_runs: list[Live]) -> None:
    live = await Live(tmp_path, _settings(l1=1.0, l2=2.0)).start()
    live_runs.append(live)
    asked = await live.ask(1)
    l1 = await live.delivered(1, 1, within=10)
    l2 = await live.delivered(1, 2, within=10)
    assert timedelta(seconds=1.0) <= _ts(l1) - asked < timedelta(seconds=1.0 + LATE)
    assert timedelta(seconds=2.0) <= _ts(l2) - asked < timedelta(seconds=2.0 + LATE)
    assert (await live.nudge_row(1, 1)).state == NudgeState.SENT
    assert nudge_key(C, "q1", 3) in live.scheduler.pending()


async def test_restart_rearms_pending_nudges_from_the_rows(tmp_path: Path, live_runs: list[Live]) -> None:
    settings = _settings(l1=2.0)
    first = await Live(tmp_path, settings).start()
    live_runs.append(first)
    asked = await first.ask(1)
    await first.stop()
    assert _outbox(first.outbox) == []

    second = Live(tmp_path, settings)
    live_runs.append(second)
    row = await second.nudge_row(1, 1)
    assert row.state == NudgeState.PENDING
    await second.start()
    armed = second.scheduler.pending()[nudge_key(C, "q1", 1)]
    assert abs(armed - row.due) < timedelta(milliseconds=1)
    l1 = await second.delivered(1, 1, within=10)
    assert timedelta(seconds=2.0) <= _ts(l1) - asked < timedelta(seconds=2.0 + LATE)
    assert (await second.nudge_row(1, 1)).state == NudgeState.SENT


async def _previous_run(tmp: Path, settings: Settings, asked: list[tuple[int, datetime]]) -> None:
    """A run of lien long gone: it saw these questions and planned their first nudges, then stopped."""
    db = make_engine(f"sqlite+aiosqlite:///{tmp / 'lien.db'}")
    try:
        await upgrade(db)
        clock = VirtualClock(min(ts for _, ts in asked))
        engine = Engine(settings, SqlStore(db), clock, VirtualScheduler())
        await engine.start()
        for n, ts in asked:
            clock.set(ts)
            await engine.handle(_question(n, ts))
    finally:
        await db.dispose()


async def test_nudges_overdue_beyond_catch_up_are_skipped_and_recent_ones_fire_at_start(
    tmp_path: Path, live_runs: list[Live]
) -> None:
    settings = _settings(l1=1.0, catch_up_hours=5 / 3600)
    now = datetime.now(UTC)
    # q1's first nudge was due 10 s ago (beyond the 5 s window); q2's 2 s ago (within); q3's is still ahead.
    await _previous_run(tmp_path, settings, [(1, now - timedelta(seconds=11)), (2, now - timedelta(seconds=3)),
                                             (3, now + timedelta(seconds=1))])
    live = await Live(tmp_path, settings).start()
    live_runs.append(live)
    assert (await live.nudge_row(1, 1)).state == NudgeState.SKIPPED_OVERDUE
    assert [n.key for n in live.skipped] == [nudge_key(C, "q1", 1)]  # what `lien run` logs, and the demo explains
    assert nudge_key(C, "q1", 1) not in live.scheduler.pending()
    l2 = await live.delivered(2, 1, within=5)
    assert _ts(l2) - now < timedelta(seconds=LATE)  # caught up at once
    l3 = await live.delivered(3, 1, within=10)
    assert _ts(l3) >= now + timedelta(seconds=2)  # asked at now + 1 s, due 1 s later
    await asyncio.sleep(0.5)
    assert [r["question"] for r in _outbox(live.outbox) if r["level"] == 1] == ["q2", "q3"]
    assert await live.nudge_row(1, 2) is None  # a skipped rung does not climb the ladder


async def test_reconcile_recreates_a_timer_lost_behind_the_engines_back(
    tmp_path: Path, live_runs: list[Live]
) -> None:
    live = await Live(tmp_path, _settings(l1=1.5)).start()
    live_runs.append(live)
    asked = await live.ask(1)
    key = nudge_key(C, "q1", 1)
    live.scheduler.cancel(key)  # lost: the engine still believes it is armed
    assert key not in live.scheduler.pending()
    await live.runtime.on_timer("reconcile")
    assert key in live.scheduler.pending()
    l1 = await live.delivered(1, 1, within=10)
    assert timedelta(seconds=1.5) <= _ts(l1) - asked < timedelta(seconds=1.5 + LATE)
    assert await live.engine.reconcile() == 0  # nothing else was lost: the next pass re-arms nothing
