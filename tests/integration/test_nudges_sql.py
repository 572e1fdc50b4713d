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
from tests.bot_driver import START, TestBot

#: Member ids distinctive enough that finding the string anywhere means finding the member.
CAROL, ALICE, BOB, DAVE = "carol-7f3a", "alice-2b9c", "bob-5d1e", "dave-8e4f"
#: Carol asks (m1) and Alice answers three minutes later (m2): the start of the restart and eviction scenarios.
ANSWERED = f"""
/as {CAROL}
How do I make the CI run only on the main branch?
/wait 3m
/as {ALICE}
/reply m1 Add a branches filter under on push in the workflow file.
"""
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


async def mydata(bot: TestBot, member: str) -> str:
    """`!lien mydata` as `member`: the private messages it sent (only to them, within Discord's 2000 characters),
    put back together."""
    since = len(bot.sent)
    await bot.lines(f"/as {member}\n!lien mydata")
    dms = bot.sent[since:]
    assert dms and {(a.name, a.to, a.room, a.mentions) for a in dms} == {("dm", member, None, ())}
    assert all(len(a.text) <= 1900 for a in dms)
    if len(dms) == 1:
        return dms[0].text
    numbers = [re.match(r"\((\d+)/(\d+)\) ", a.text) for a in dms]
    assert [(int(m.group(1)), int(m.group(2))) for m in numbers if m] == [(i, len(dms)) for i in range(1, len(dms) + 1)]
    return "\n".join(a.text[m.end():] for a, m in zip(dms, numbers, strict=True) if m)


def listed_counts(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^- (\w+): (\d+) ", text, re.MULTILINE)}


async def test_mydata_lists_every_row_naming_the_member(sql_store: SqlStore, tmp_path: Path) -> None:
    bot = await _community(sql_store)
    stored = rows_naming(tmp_path / "lien.db", CAROL)
    text = await mydata(bot, CAROL)
    listed = listed_counts(text)
    for table, rows in stored.items():
        assert listed.get(table, 0) >= len(rows), (table, listed, text[-300:])
    assert set(listed) <= set(stored) | {"answers", "nudges"}  # answers to / nudges about her questions
    # Her own question ids are in the listing.
    q = bot.id("m5")
    assert q in text


async def test_mydata_of_a_busy_member_is_complete(sql_store: SqlStore, tmp_path: Path) -> None:
    """Regression (issue 3): the whole DM was cut at 4000 characters, so the tables listed after `messages`
    (nudges, outbox, questions) went missing for an active member, and only 20 rows of each table were shown."""
    bot = await _community(sql_store)
    for i in range(40):
        await bot.lines(f"/as {CAROL}\nNoting the build number {i} for later, nothing to see here.\n/wait 1m")
    stored = rows_naming(tmp_path / "lien.db", CAROL)
    text = await mydata(bot, CAROL)
    assert len(text) > 4000  # several messages
    listed = listed_counts(text)
    assert {t: listed.get(t, 0) >= len(rows) for t, rows in stored.items()} == dict.fromkeys(stored, True)
    # Every row, not a sample: each of her messages is there by id.
    with contextlib.closing(sqlite3.connect(tmp_path / "lien.db")) as db:
        hers = [r[0] for r in db.execute("SELECT id FROM messages WHERE author = ?", (CAROL,))]
    assert len(hers) > 40 and [m for m in hers if f'"{m}"' not in text] == []


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


async def test_each_event_seen_twice_in_a_row_changes_nothing(sql_store: SqlStore, tmp_path: Path) -> None:
    run = Run(sql_store, T0)
    await run.engine.start()
    for ev in EVENTS:
        await run.feed([ev])
        after_once = dump(tmp_path / "lien.db")
        again = await run.engine.handle(ev)
        assert again == [], ev  # commands included: a command seen before is not answered again
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
    assert replayed == []  # commands included
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
    await bot.lines(ANSWERED)
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


# -- commands are idempotent per event id (issue 3) ------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        _msg("c9", 60, CAROL, "!lien mydata"),
        Command(C, "general", "interaction-9", CAROL, at(60), "mydata"),
        _msg("c9", 60, CAROL, "!lien forget-me"),
    ],
    ids=["text-command", "slash-command", "forget-me"],
)
async def test_a_command_replayed_after_a_restart_is_not_run_or_answered_again(
    sql_store: SqlStore, tmp_path: Path, command: Event
) -> None:
    run, _ = await _first_run(sql_store)
    first = await run.feed([command])
    assert [a.kind for a in first] == ["command"] * len(first) and first
    await run.feed([_msg("q9", 61, CAROL, "Is there a way to pin the runner image version?")])
    before = dump(tmp_path / "lien.db")
    # The key of a handled command names the event, never the member.
    assert [k for _c, k, _ts in before["seen_events"] if CAROL in k] == []

    fresh = Run(sql_store, at(62))  # a new process, caught up from history
    await fresh.engine.start()
    assert await fresh.engine.handle(command) == []
    assert dump(tmp_path / "lien.db") == before  # forget-me did not run again: her new question stays


async def test_handled_command_keys_are_purged_with_retention(sql_store: SqlStore, tmp_path: Path) -> None:
    run, _ = await _first_run(sql_store)
    assert len(dump(tmp_path / "lien.db")["seen_events"]) == 2  # c1 (text) and c2 (slash)
    await run.advance(T0 + timedelta(days=Settings().lien.retention_days + 2))
    assert dump(tmp_path / "lien.db")["seen_events"] == []


# -- ping budgets and asker cooldowns survive a restart (issue 3) ----------------------------------------------


async def _restarted(bot: TestBot, path: Path, stack: contextlib.AsyncExitStack, run: int) -> TestBot:
    """A new process: a new database engine on the same SQLite file, a new lien engine, the console's labels kept."""
    db = make_engine(f"sqlite+aiosqlite:///{path}")
    stack.push_async_callback(db.dispose)
    again = TestBot(SqlStore(db), bot.settings, start=bot.clock.now())
    again.adapter.run_id = f"t{run}"
    for known in ("_ids", "_labels", "_rooms", "_threads"):
        getattr(again.adapter, known).update(getattr(bot.adapter, known))
    again.adapter._count = bot.adapter._count
    again.adapter.sent.extend(bot.sent)
    return await again.start()


async def test_ping_budget_and_asker_cooldown_hold_across_restarts_on_sqlite(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    settings = Settings.model_validate({"nudges": {"quiet_hours": {"enabled": False}}})  # 1 ping/day, 3/week
    bot = await TestBot(sql_store, settings).start()
    await bot.lines(f"/as {BOB}\n!lien helper on\nMorning, I can help with CI questions today.")
    asked: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        for i in range(8):  # a question every 12 hours, each from a new asker, a restart before each
            bot = await _restarted(bot, tmp_path / "lien.db", stack, i + 2)
            await bot.lines(f"/as asker{i}\nHow do I pin the version of tool number {i} in the lockfile?")
            asked.append(bot.id(f"m{bot.adapter._count}"))
            await bot.wait("2h")
            bot = await _restarted(bot, tmp_path / "lien.db", stack, i + 20)
            q = asked[-1]
            if any(a.question == q for a in bot.of("nudge", 2) if BOB in a.mentions):  # he helps: no halving
                await bot.lines(f"/as {BOB}\n/reply {bot.adapter._labels[q]} Pin it in constraints.txt.")
            await bot.wait("10h")
        pings = [a.ts for a in bot.of("nudge", 2) if BOB in a.mentions]
        assert pings == [START + timedelta(hours=2 + 24 * d) for d in range(3)]  # then the week's budget is spent

        # alice got her reminder, then a restart: her next question within 7 days gets none; dave's does.
        bot = await _restarted(bot, tmp_path / "lien.db", stack, 50)
        await bot.lines(f"/as {ALICE}\nWhere does the runner keep its cache between jobs?")
        first = bot.id(f"m{bot.adapter._count}")
        await bot.wait("1h")
        bot = await _restarted(bot, tmp_path / "lien.db", stack, 51)
        await bot.lines(f"/as {ALICE}\nWhere does the runner keep its logs between jobs?\n"
                        f"/as {DAVE}\nWhere does the runner keep its secrets between jobs?")
        second, daves = bot.id(f"m{bot.adapter._count - 1}"), bot.id(f"m{bot.adapter._count}")
        await bot.wait("1h")
        reminded = [a.question for a in bot.of("nudge", 1)]
        assert first in reminded and daves in reminded and second not in reminded


async def test_a_reply_to_an_evicted_answered_question_links_beside_its_earlier_answer(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    """An answered question idle for days leaves memory; a late reply to it reloads it with its answers and links
    (this crashed when the question came back without them)."""
    bot = await TestBot(sql_store, Settings.model_validate({"nudges": {"quiet_hours": {"enabled": False}}})).start()
    await bot.lines(ANSWERED + f"""
/wait 4d
/as {DAVE}
Morning all, the release notes are out.
/as {BOB}
/reply m1 Or use a rules block with a branch condition.
""")
    assert bot.engine.tracker.get(C, bot.id("m1")) is not None  # reloaded by the late reply
    with contextlib.closing(sqlite3.connect(tmp_path / "lien.db")) as db:
        answers = db.execute("SELECT author FROM answers WHERE question = ? ORDER BY ts", (bot.id("m1"),)).fetchall()
    assert answers == [(ALICE,), (BOB,)]


async def test_guard_strikes_survive_a_restart_and_forget_me_deletes_them(sql_store: SqlStore, tmp_path: Path) -> None:
    """A member flooding again after a restart gets the ladder's next step, not a first warning again."""
    settings = Settings.model_validate({"guard": {"mode": "enforce"}})
    flood = f"/as {DAVE}\n" + "\n".join(f"buy now number {i}\n/wait 1s" for i in range(8))  # 8 lines in 8 s
    bot = await TestBot(sql_store, settings).start()
    await bot.lines(flood)
    assert [a.name for a in bot.of("guard") if a.to != "mods" and a.name != "report"] == ["reply"]  # a warning
    async with contextlib.AsyncExitStack() as stack:
        bot = await _restarted(bot, tmp_path / "lien.db", stack, 2)
        since = len(bot.sent)
        await bot.lines("/wait 5m\n" + flood)
        steps = {a.name for a in bot.sent[since:] if a.kind == "guard" and a.name != "report"}
        assert steps == {"delete"}, bot.sent[since:]  # strike 2 of the window: the flood is deleted
        assert len(dump(tmp_path / "lien.db")["guard_strikes"]) == 2
        await bot.lines(f"/as {BOB}\n/admin\n!lien pardon {DAVE}")  # a moderator's pardon clears them
        assert dump(tmp_path / "lien.db")["guard_strikes"] == []
        await bot.lines("/wait 5m\n" + flood)
        assert len(dump(tmp_path / "lien.db")["guard_strikes"]) == 1
        await bot.lines("/wait 2d")  # the daily purge drops strikes older than any strike window
        assert dump(tmp_path / "lien.db")["guard_strikes"] == []
        await bot.lines(flood)

        await bot.lines(f"/as {DAVE}\n!lien forget-me")
        assert rows_naming(tmp_path / "lien.db", DAVE) == {}
        bot = await _restarted(bot, tmp_path / "lien.db", stack, 3)
        since = len(bot.sent)
        await bot.lines("/wait 5m\n" + flood)
        assert [a.name for a in bot.sent[since:] if a.kind == "guard" and a.name != "report"] == ["reply"]
