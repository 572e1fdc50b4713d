"""The engine on a real SqlStore (SQLite file, real migrations): privacy commands and idempotency end to end.

`!lien forget-me` must leave no trace of the member in any column of any table (JSON columns and outbox payloads
included), `!lien mydata` must list every row that names them, and an event seen twice must change nothing,
also after a restart with a fresh engine on the same database.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.actions import Action
from bot.clock import VirtualClock
from bot.config import Settings
from bot.engine import Engine
from bot.events import Command, Delete, Edit, Event, MemberJoin, Message, Reaction
from bot.timers import VirtualScheduler
from storage.db import make_engine
from storage.migrate import upgrade
from storage.repositories import SqlStore
from tests.bot_driver import TestBot

#: Member ids distinctive enough that finding the string anywhere means finding the member.
CAROL, ALICE, BOB, DAVE = "carol-7f3a", "alice-2b9c", "bob-5d1e", "dave-8e4f"
C = "console"


@pytest.fixture
async def sql_store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    db = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'lien.db'}")
    await upgrade(db)
    try:
        yield SqlStore(db)
    finally:
        await db.dispose()


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the SQLite file (alembic_version included), sorted."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: sorted(db.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


def rows_naming(path: Path, member: str) -> dict[str, list[tuple[object, ...]]]:
    """Per table, the rows in which any text column (JSON and payloads included) contains `member`."""
    found: dict[str, list[tuple[object, ...]]] = {}
    for table, rows in dump(path).items():
        hits = [r for r in rows if any(isinstance(v, str | bytes) and member in str(v) for v in r)]
        if hits:
            found[table] = hits
    return found


# A community where carol asks (answered by alice, thanked), answers dave, volunteers as a helper, allows DMs, is
# pinged at level 2 about alice's question (outbox payload and nudge rows name her), and credits alice.
HISTORY = f"""
/as {BOB}
!lien helper on
Morning, I can help with CI questions today.
/as {CAROL}
!lien helper on
!lien dms on
How do I make the CI run only on the main branch?
/wait 3m
/as {ALICE}
/reply m5 Add a branches filter under on push in the workflow file.
/wait 2m
/as {CAROL}
/reply m6 thanks {ALICE}, that worked!
/wait 1h
/as {DAVE}
Which port does the metrics exporter listen on by default?
/wait 4m
/as {CAROL}
/reply m8 9100, unless you set the listen address flag.
/wait 2h
/as {ALICE}
Does anyone know why my docker build ignores the dockerignore file?
/wait 3h
/as {CAROL}
Is there a way to cache the pip downloads between workflow runs?
/wait 40m
"""


async def _community(store: SqlStore) -> TestBot:
    bot = await TestBot(store, Settings.model_validate({"nudges": {"quiet_hours": {"enabled": False}}})).start()
    await bot.lines(HISTORY)
    return bot


async def test_forget_me_leaves_no_row_naming_the_member_in_any_table(sql_store: SqlStore, tmp_path: Path) -> None:
    db = tmp_path / "lien.db"
    bot = await _community(sql_store)
    before = rows_naming(db, CAROL)
    # The history touched every kind of row: make sure the scan had something to find.
    assert {"messages", "questions", "answers", "help_edges", "nudges", "members", "outbox"} <= set(before)
    assert any(CAROL in str(r) for r in before["outbox"])  # she was mentioned in a level-2 nudge
    assert rows_naming(db, ALICE) and rows_naming(db, BOB)

    await bot.lines(f"/as {CAROL}\n!lien forget-me")
    assert "deleted" in bot.sent[-1].text
    assert rows_naming(db, CAROL) == {}
    # Others keep their own rows (alice's question and her answer to carol's question stay hers).
    assert {"messages", "questions"} <= set(rows_naming(db, ALICE))
    assert "members" in rows_naming(db, BOB)

    # The engine forgot her too: her open question is no longer nudged, and she is not pinged again.
    carols_open_question = bot.id("m11")
    since = len(bot.sent)
    await bot.lines(f"/as {DAVE}\nWhy does the deploy hang on the migration step every time?")
    await bot.wait("3d")
    later = bot.sent[since:]
    daves = bot.id(f"m{bot.adapter._count}")
    assert [a.level for a in later if a.question == daves] == [1, 2, 3]
    assert [a for a in later if a.question == carols_open_question] == []
    assert not [a for a in later if CAROL in a.mentions or a.to == CAROL or CAROL in a.text]
    assert rows_naming(db, CAROL) == {}


async def test_mydata_lists_every_row_naming_the_member(sql_store: SqlStore, tmp_path: Path) -> None:
    bot = await _community(sql_store)
    stored = rows_naming(tmp_path / "lien.db", CAROL)
    await bot.lines(f"/as {CAROL}\n!lien mydata")
    dm = bot.sent[-1]
    assert (dm.name, dm.to, dm.room) == ("dm", CAROL, None)
    listed = {m.group(1): int(m.group(2)) for m in re.finditer(r"^- (\w+): (\d+) ", dm.text, re.MULTILINE)}
    for table, rows in stored.items():
        assert listed.get(table, 0) >= len(rows), (table, listed, dm.text[-300:])
    assert set(listed) <= set(stored) | {"answers", "nudges"}  # answers to / nudges about her questions
    # Her own question ids are in the listing.
    q = bot.id("m5")
    assert q in dm.text


@pytest.mark.xfail(strict=True, reason="bot/commands.py `_mydata` cuts the whole DM at 4000 characters, so the "
                   "tables listed after `messages` (nudges, outbox, questions) go missing for an active member")
async def test_mydata_of_a_busy_member_is_complete(sql_store: SqlStore, tmp_path: Path) -> None:
    bot = await _community(sql_store)
    for i in range(40):
        await bot.lines(f"/as {CAROL}\nNoting the build number {i} for later, nothing to see here.\n/wait 1m")
    stored = rows_naming(tmp_path / "lien.db", CAROL)
    await bot.lines(f"/as {CAROL}\n!lien mydata")
    dm = bot.sent[-1]
    listed = {m.group(1): int(m.group(2)) for m in re.finditer(r"^- (\w+): (\d+) ", dm.text, re.MULTILINE)}
    assert {t: listed.get(t, 0) >= len(rows) for t, rows in stored.items()} == dict.fromkeys(stored, True)


# -- idempotency -------------------------------------------------------------------------------------------------

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _msg(id_: str, minutes: float, author: str, text: str, **kw: object) -> Message:
    return Message(C, "general", id_, at(minutes), author, text, **kw)  # type: ignore[arg-type]


EVENTS: list[Event] = [
    _msg("c1", 0, BOB, "!lien helper on"),
    _msg("m1", 1, BOB, "Morning, I can help with CI questions today."),
    MemberJoin(C, DAVE, at(2)),
    _msg("q1", 5, CAROL, "How do I make the CI run only on the main branch?"),
    _msg("a1", 8, ALICE, "Add a branches filter under on push in the workflow file.", reply_to="q1"),
    Reaction(C, "general", "a1", CAROL, "✅", at(10)),
    _msg("q2", 20, DAVE, "Which port does the metrics exporter listen on by default?"),
    Edit(C, "general", "q2", "Which port does the metrics exporter listen on by default, please?", at(21)),
    _msg("q3", 30, ALICE, "Does anyone know why my docker build ignores the dockerignore file?"),
    Delete(C, "general", "q3", at(31)),
    _msg("q4", 40, CAROL, "Is there a way to cache the pip downloads between workflow runs?"),
    Command(C, "general", "c2", DAVE, at(45), "not-a-question", ("q2",)),
    _msg("q5", 50, ALICE, "How can I rotate the signing keys without downtime?"),
    _msg("a5", 55, BOB, "Publish the new key first, then retire the old one.", reply_to="q5"),
    _msg("t5", 56, ALICE, "thanks, that worked!", reply_to="a5"),
]


class Run:
    """An engine on the SQLite file and a virtual clock; timers fire as time passes."""

    def __init__(self, store: SqlStore, start: datetime) -> None:
        self.clock = VirtualClock(start)
        self.scheduler = VirtualScheduler()
        self.engine = Engine(Settings.model_validate({"nudges": {"quiet_hours": {"enabled": False}}}), store,
                             self.clock, self.scheduler)

    async def advance(self, until: datetime) -> list[Action]:
        out: list[Action] = []
        while (due := self.scheduler.pop_due(until)) is not None:
            self.clock.set(due[0])
            out += await self.engine.fire(due[1])
        self.clock.set(until)
        return out

    async def feed(self, events: list[Event]) -> list[Action]:
        out: list[Action] = []
        for ev in events:
            out += await self.advance(max(ev.ts, self.clock.now()))
            out += await self.engine.handle(ev)
        return out


def _no_reply_to_commands(actions: list[Action]) -> list[Action]:
    return [a for a in actions if a.kind != "command"]


async def test_each_event_seen_twice_in_a_row_changes_nothing(sql_store: SqlStore, tmp_path: Path) -> None:
    run = Run(sql_store, T0)
    await run.engine.start()
    for ev in EVENTS:
        await run.feed([ev])
        after_once = dump(tmp_path / "lien.db")
        again = await run.engine.handle(ev)
        assert _no_reply_to_commands(again) == [], ev
        assert dump(tmp_path / "lien.db") == after_once, ev


async def _first_run(store: SqlStore) -> tuple[Run, list[Action]]:
    run = Run(store, T0)
    await run.engine.start()
    return run, await run.feed(EVENTS)


@pytest.mark.parametrize("later", [timedelta(minutes=1), timedelta(hours=20), timedelta(days=5)],
                         ids=["minute-later", "next-day", "days-later"])
async def test_replaying_every_event_after_a_restart_changes_nothing(
    sql_store: SqlStore, tmp_path: Path, later: timedelta
) -> None:
    run, _ = await _first_run(sql_store)
    end = run.clock.now() + later
    await run.advance(end)
    before = dump(tmp_path / "lien.db")

    fresh = Run(sql_store, end)  # a new process on the same database, fed the whole history again
    await fresh.engine.start()
    replayed = await fresh.engine.handle(EVENTS[0])
    for ev in EVENTS[1:]:
        replayed += await fresh.engine.handle(ev)
    assert _no_reply_to_commands(replayed) == []
    assert dump(tmp_path / "lien.db") == before


async def test_replay_after_a_restart_does_not_nudge_twice(sql_store: SqlStore, tmp_path: Path) -> None:
    run, actions = await _first_run(sql_store)
    actions += await run.advance(at(60))
    fresh = Run(sql_store, at(60))
    await fresh.engine.start()
    actions += await fresh.feed(EVENTS)  # an adapter that re-delivered everything after the restart
    actions += await fresh.advance(at(60) + timedelta(days=3))
    nudges = [(a.question, a.level) for a in actions if a.kind == "nudge"]
    assert len(nudges) == len(set(nudges))
    # q4 (carol, never answered) climbs the whole ladder; nothing else is nudged.
    assert sorted(nudges) == [("q4", 1), ("q4", 2), ("q4", 3)]


async def test_after_a_restart_an_answered_question_takes_a_second_answer_and_the_askers_thanks(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    """A restart reloads live questions with their answers: a later answer, then the asker's ✅ on the first
    answer, link and credit the right people (this crashed when answers were not reloaded)."""
    settings = Settings.model_validate({"nudges": {"quiet_hours": {"enabled": False}}})
    bot = await TestBot(sql_store, settings).start()
    await bot.lines(f"""
/as {CAROL}
How do I make the CI run only on the main branch?
/wait 3m
/as {ALICE}
/reply m1 Add a branches filter under on push in the workflow file.
""")
    again = TestBot(sql_store, settings, start=bot.clock.now())
    again.adapter.run_id = "t2"
    for known in ("_ids", "_labels", "_rooms", "_threads"):
        getattr(again.adapter, known).update(getattr(bot.adapter, known))
    again.adapter._count = bot.adapter._count
    await again.start()
    await again.lines(f"""
/as {BOB}
/reply m1 Or use a rules block with a branch condition.
/as {CAROL}
/react m2 ✅
""")
    with contextlib.closing(sqlite3.connect(tmp_path / "lien.db")) as db:
        answers = db.execute("SELECT message, author FROM answers ORDER BY ts").fetchall()
        state, credited = db.execute("SELECT state, credited FROM questions WHERE id = ?", (bot.id("m1"),)).fetchone()
    assert answers == [(bot.id("m2"), ALICE), (again.id("m3"), BOB)]
    assert state == "resolved" and ALICE in credited and BOB not in credited
