"""Commands run once per event id, and long answers (`mydata`) go out whole, in numbered pages.

Regressions of issue 3: a replayed command (same message or interaction id, e.g. history caught up after a restart)
was answered again, and `!lien mydata` was cut at 4000 characters.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from bot import render
from bot.commands import COMMANDS_PER_MINUTE
from bot.events import Command, Message
from tests.bot_driver import START, TestBot
from tests.fakes import FakeStore

C = "console"


def _cmd(id_: str, name: str, *args: str, seconds: float = 0) -> Command:
    return Command(C, "general", id_, "alice", START + timedelta(seconds=seconds), name, args)


async def test_a_command_seen_twice_runs_once() -> None:
    bot = await TestBot(FakeStore()).start()
    first = await bot.engine.handle(_cmd("i1", "helper", "on"))
    assert [a.kind for a in first] == ["command"]
    assert await bot.engine.handle(_cmd("i1", "helper", "off", seconds=5)) == []  # same id: not run
    async with bot.engine.store.transaction() as tx:
        stored = await tx.members.get(C, "alice")
    assert stored is not None and stored.helper
    assert [a.kind for a in await bot.engine.handle(_cmd("i2", "helper", "off", seconds=6))] == ["command"]


async def test_a_text_command_seen_twice_is_answered_once() -> None:
    bot = await TestBot(FakeStore()).start()
    m = Message(C, "general", "m1", START, "alice", "!lien policy")
    assert len(await bot.engine.handle(m)) == 1
    assert await bot.engine.handle(m) == []


async def test_replays_do_not_count_against_the_command_rate() -> None:
    bot = await TestBot(FakeStore()).start()
    for i in range(3 * COMMANDS_PER_MINUTE):
        await bot.engine.handle(_cmd("i1", "policy", seconds=i))
    # The first one counted; its replays did not: the rest of the minute's allowance is still there.
    more = COMMANDS_PER_MINUTE - 1
    answers = [await bot.engine.handle(_cmd(f"j{i}", "policy", seconds=20 + i)) for i in range(more)]
    assert [a[0].name for a in answers] == ["reply"] * more


# -- pages -----------------------------------------------------------------------------------------------------


def test_a_short_text_is_one_unnumbered_page() -> None:
    assert render.pages("What lien stores about you:\n-") == ["What lien stores about you:\n-"]


def test_a_long_text_is_cut_between_lines_into_numbered_pages_that_keep_every_line() -> None:
    lines = [f"  [\"id-{i}\", \"2026-03-04T10:{i % 60:02d}:00+00:00\", null]" for i in range(300)]
    text = "What lien stores about you:\n" + "\n".join(lines)
    pages = render.pages(text, limit=1900)
    assert len(pages) > 1 and all(len(p) <= 1900 for p in pages)
    assert [p.split(" ", 1)[0] for p in pages] == [f"({i}/{len(pages)})" for i in range(1, len(pages) + 1)]
    assert "\n".join(p.split(" ", 1)[1] for p in pages) == text  # nothing lost, no line cut


def test_a_line_longer_than_a_page_is_cut_inside() -> None:
    text = "head\n" + "x" * 4500 + "\ntail"
    pages = render.pages(text, limit=1000)
    assert all(len(p) <= 1000 for p in pages)
    assert "".join(p.split(" ", 1)[1].replace("\n", "") for p in pages) == text.replace("\n", "")


def test_pages_mention_no_one() -> None:
    pages = render.pages("<@bob> @everyone\n" + "y" * 3000, limit=1000)
    assert "<@bob>" not in pages[0] and "@everyone" not in pages[0]


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_table_lines_list_shared_values_once_and_every_row(lang: str) -> None:
    rows = [{"community": C, "id": f"m{i}", "author": "alice", "ts": f"2026-03-04T10:0{i}:00"} for i in range(3)]
    head, *body = render.table_lines("messages", rows, lang)
    assert head.startswith("- messages: 3 ")
    assert json.dumps({"community": C, "author": "alice"}) in head and json.dumps(["id", "ts"]) in head
    assert [json.loads(line) for line in body] == [[f"m{i}", f"2026-03-04T10:0{i}:00"] for i in range(3)]
    assert render.table_lines("members", rows[:1]) == [f"- members: 1 {json.dumps(rows[0])}"]
