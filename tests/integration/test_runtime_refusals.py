"""When a platform refuses a guard action, the live runtime tells the moderators, in their room, and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.actions import Action, DeleteMessage, Post, Report, Timeout
from bot.clock import VirtualClock
from bot.config import Settings
from bot.engine import Engine
from bot.errors import ActionRefused, UnsupportedAction
from bot.ports import EventHandler
from bot.runtime import Runtime
from bot.timers import VirtualScheduler
from tests.fakes import FakeStore

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
GAP = timedelta(minutes=6)
C = "guild"


class RefusingPlatform:
    """A fake at the platform edge: it refuses deletes and timeouts (as a platform does when lien lacks the
    permission) and records everything it performs."""

    platform = "fake"

    def __init__(self, refusal: UnsupportedAction) -> None:
        self.refusal = refusal
        self.performed: list[Action] = []

    async def start(self, on_event: EventHandler) -> None:
        return None

    async def perform(self, action: Action) -> None:
        if isinstance(action, DeleteMessage | Timeout):
            raise self.refusal
        self.performed.append(action)

    async def already_sent(self, action: Action) -> bool:
        return False

    async def stop(self) -> None:
        return None


async def _deliver(settings: Settings, platform: RefusingPlatform, *batches: list[Action]) -> list[Action]:
    """Deliver each batch in turn, the clock moving `GAP` between them."""
    clock = VirtualClock(NOW)
    runtime = Runtime(Engine(settings, FakeStore(), clock, VirtualScheduler()), [platform], clock)
    for i, actions in enumerate(batches):
        if i:
            clock.set(clock.now() + GAP)
        await runtime.deliver(actions)
        for _ in range(3):  # a note is queued while the refused action is handled: drain the new queue too
            await runtime.drained()
    await runtime.stop()
    return platform.performed


def _settings(**values: object) -> Settings:
    return Settings.model_validate({"nudges": {"room_pace_seconds": 0}, **values})


@pytest.mark.parametrize("lang", ["en", "fr"])
async def test_a_refused_timeout_and_delete_are_reported_to_the_moderators_room_with_the_reason(lang: str) -> None:
    refusal = ActionRefused("lien lacks power level 100 to change power levels in !r:x", reason="permission")
    guard = dict(ts=NOW, community=C, room="general", kind="guard", reason="flood")
    performed = await _deliver(
        _settings(moderators_room="mods", language=lang), RefusingPlatform(refusal),
        [Timeout(to="@everyone-spammer", minutes=10, **guard), DeleteMessage(reply_to="m1", **guard),
         Post(ts=NOW, community=C, room="general", kind="info", text="hello")])
    notes = [a for a in performed if isinstance(a, Report)]
    assert [n.room for n in notes] == ["mods", "mods"]
    assert all(n.reason == "permission" and "lien lacks power level 100" in n.text for n in notes)
    assert "@everyone-spammer" not in notes[0].text  # the member id is repeated without a live mention
    assert "<link:general/m1>" in notes[1].text
    assert [a.kind for a in performed if not isinstance(a, Report)] == ["info"]  # other actions unaffected


async def test_without_a_moderators_room_the_note_goes_to_the_room_of_the_hit() -> None:
    performed = await _deliver(_settings(), RefusingPlatform(UnsupportedAction("timeout not permitted")),
                               [Timeout(ts=NOW, community=C, room="general", kind="guard", to="bob", minutes=5)])
    [note] = performed
    assert isinstance(note, Report) and note.room == "general" and "timeout not permitted" in note.text


async def test_a_refusal_repeated_for_every_message_of_a_flood_is_reported_once_per_ten_minutes() -> None:
    refusal = UnsupportedAction("delete not permitted in general: Missing Permissions")
    deletes = [DeleteMessage(ts=NOW, community=C, room="general", kind="guard", reason="flood", reply_to=f"m{i}")
               for i in range(8)]
    performed = await _deliver(_settings(moderators_room="mods"), RefusingPlatform(refusal),
                               deletes, deletes[:2], deletes[:2])  # then 6 and 12 minutes later
    notes = [a for a in performed if isinstance(a, Report)]
    assert len(notes) == 2  # the flood's first refusal, and the one 12 minutes after it
    assert "<link:general/m0>" in notes[0].text and "<link:general/m0>" in notes[1].text
