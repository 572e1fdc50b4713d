"""The cyclic collector is paused for a replay's run and given back as it was."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

from bot.config import Settings
from bot.cycles import cycle_collector_paused
from bot.events import Message
from bot.simulate import Simulation
from tests.fakes import FakeStore


def test_collector_is_off_inside_and_back_on_after() -> None:
    assert gc.isenabled()
    with cycle_collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collector_left_off_when_it_was_off_before() -> None:
    gc.disable()
    try:
        with cycle_collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_collector_back_on_when_the_block_raises() -> None:
    try:
        with cycle_collector_paused():
            raise RuntimeError("replay failed")
    except RuntimeError:
        pass
    assert gc.isenabled()


async def test_simulation_runs_with_the_collector_paused() -> None:
    states: list[bool] = []
    ts = datetime(2026, 1, 5, 9, tzinfo=UTC)
    ask = Message(community="c", room="#help", id="q1", ts=ts, author="ann", text="How do I reset my password?")
    await Simulation(Settings(), FakeStore()).run([ask], lambda action: states.append(gc.isenabled()))
    assert states, "the unanswered question should have been nudged"
    assert not any(states)
    assert gc.isenabled()
