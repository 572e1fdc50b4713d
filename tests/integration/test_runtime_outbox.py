"""At start the runtime delivers what a previous run decided and did not send, unless it is long overdue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.actions import Action, Reply, to_record
from bot.clock import VirtualClock
from bot.config import Settings
from bot.engine import Engine
from bot.ports import EventHandler
from bot.runtime import Runtime
from bot.timers import VirtualScheduler
from tests.fakes import FakeStore

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
C = "guild"


class RecordingPlatform:
    """A fake at the platform edge: performs nothing, records what it was asked to perform."""

    platform = "fake"

    def __init__(self) -> None:
        self.performed: list[Action] = []

    async def start(self, on_event: EventHandler) -> None:
        return None

    async def perform(self, action: Action) -> None:
        self.performed.append(action)

    async def already_sent(self, action: Action) -> bool:
        return False

    async def stop(self) -> None:
        return None


def _nudge(question: str, decided: datetime) -> Reply:
    return Reply(ts=decided, community=C, room="help", reply_to=question, question=question, kind="nudge", level=1,
                 key=f"nudge|{C}|{question}|1", text="Anyone?")


async def test_unsent_nudges_within_catch_up_are_delivered_and_older_ones_are_given_up() -> None:
    settings = Settings.model_validate({"nudges": {"room_pace_seconds": 0, "catch_up_hours": 24}})
    store = FakeStore()
    recent, old = _nudge("q-recent", NOW - timedelta(hours=23)), _nudge("q-old", NOW - timedelta(hours=25))
    async with store.transaction() as tx:
        for action in (recent, old):
            tx.outbox.put(action.key, C, to_record(action), action.ts)
    clock = VirtualClock(NOW)
    platform = RecordingPlatform()
    runtime = Runtime(Engine(settings, store, clock, VirtualScheduler()), [platform], clock)

    assert await runtime.deliver_unsent() == 1
    await runtime.drained()
    assert [a.key for a in platform.performed] == [recent.key]
    async with store.transaction() as tx:
        assert await tx.outbox.unsent(10) == []  # the old one is settled: a second start sends nothing either
        given_up = await tx.outbox.get(old.key)
    assert given_up is not None and given_up.sent_at == NOW
    assert await runtime.deliver_unsent() == 0
    await runtime.stop()
