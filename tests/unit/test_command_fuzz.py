"""Any text after the command prefix is parsed and answered without an exception, by the parser and the engine.

lien may answer with its own refusals and usage hints; it never raises on a member's input. Each example builds a
fresh engine on in-memory fakes (well under a millisecond), so the CI profile's 10,000 examples stay quick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.actions import Action
from bot.commands import MAX_ARG_LEN, MAX_ARGS, REFUSED, parse_command
from bot.events import Command, Message
from tests.bot_driver import START, TestBot
from tests.fakes import FakeStore

PREFIX = "!lien"
#: Every refusal reason the command layer may give.
REASONS = {r for r, _ in REFUSED.values()} | {"mass_mention", "permission", "rate_limit", "bad_command"}

words = st.one_of(
    st.sampled_from(["help", "policy", "solved", "not-a-question", "unanswered", "helper", "optout", "optin", "dms",
                     "why", "mydata", "forget-me", "pause", "resume", "config", "show", "reload", "on", "off", "all",
                     "dm-all", "invite", "<@1>", "@everyone", "'", '"', "\\", "--", "m1", "HELP", "\u202e"]),
    st.text(max_size=12),
)
bodies = st.one_of(st.text(max_size=80), st.lists(words, max_size=8).map(" ".join))
separators = st.sampled_from([" ", "\t", "", "  "])


@given(separators, bodies)
@example(" ", '"unterminated')
@example(" ", "")
@example("", "")
def test_parse_command_takes_any_text(sep: str, body: str) -> None:
    cmd = parse_command(Message("c", "r", "m", START, "alice", PREFIX + sep + body), PREFIX)
    assert cmd.name == cmd.name.lower()
    assert len(cmd.args) <= MAX_ARGS
    assert all(len(a) <= MAX_ARG_LEN for a in cmd.args)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:
        yield r


def _check(actions: list[Action]) -> None:
    for a in actions:
        if a.kind == "guard":  # the guard sees commands too: repeated identical ones are reported (observe mode)
            assert a.name in ("report", "reply", "delete", "timeout") and not a.mentions, a
            continue
        assert a.kind == "command", a
        assert a.name in ("reply", "refuse", "dm"), a
        assert a.text, a
        if a.name == "refuse":
            assert a.reason in REASONS, a


async def _say_all(texts: list[str]) -> list[Action]:
    bot = await TestBot(FakeStore()).start()
    out: list[Action] = []
    for i, text in enumerate(texts):
        bot.clock.set(START + timedelta(seconds=i))
        out += await bot.engine.handle(Message("console", "general", f"m{i}", bot.clock.now(), "alice", text))
    return out


@given(st.lists(st.tuples(separators, bodies).map(lambda t: PREFIX + t[0] + t[1]), min_size=1, max_size=4))
@example([PREFIX + " why " + "x" * 5000])
@example([PREFIX + " " + "a " * 500])
@example([f"{PREFIX} solved m0", f"{PREFIX} not-a-question m0", f"{PREFIX} forget-me", f"{PREFIX} mydata"])
def test_engine_answers_any_prefixed_message(runner: asyncio.Runner, texts: list[str]) -> None:
    _check(runner.run(_say_all(texts)))


async def _command(name: str, args: list[str], is_admin: bool, is_dm: bool) -> list[Action]:
    bot = await TestBot(FakeStore()).start()
    await bot.lines("/as bob\nHow do I rotate the signing keys without downtime?")
    cmd = Command("console", "general", "c1", "alice", bot.clock.now(), name, tuple(args), is_admin=is_admin,
                  is_dm=is_dm)
    return await bot.engine.handle(cmd)


@given(words, st.lists(words, max_size=6), st.booleans(), st.booleans())
@example("config", ["reload"], True, False)
@example("solved", ["console:m1"], True, False)
@example("config", ["show"], True, True)
def test_engine_answers_any_command_event(runner: asyncio.Runner, name: str, args: list[str], is_admin: bool,
                                          is_dm: bool) -> None:
    _check(runner.run(_command(name, args, is_admin, is_dm)))
