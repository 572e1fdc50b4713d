"""`storage.export`: history read back as core dataclasses, on migrated SQLite files and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.events import Message
from bot.model import HelpEdge, QState, Question
from storage import export
from storage.db import make_engine
from storage.repositories import SqlStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
C = "guild-1"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(db_url)
    try:
        yield eng
    finally:
        await eng.dispose()


async def seed(engine: AsyncEngine) -> None:
    async with SqlStore(engine).transaction() as tx:
        tx.questions.save(Question(C, "q2", "dev", "bob", at(60), state=QState.ANSWERED, answered_by="m9",
                                   first_answer_ts=at(70), answers=["m9"], credited=["ann"]))
        tx.questions.save(Question(C, "q1", "help", "ann", at(0)))
        tx.questions.save(Question("other", "q1", "help", "ann", at(-600)))
        tx.edges.add(HelpEdge(C, "dev", "ann", "bob", "q2", "answer", at(70)))
        tx.edges.add(HelpEdge(C, "dev", "ann", "bob", "q2", "credit", at(75)))
        tx.edges.add(HelpEdge(C, "help", "cat", "ann", "q0", "answer", at(-30)))


async def test_questions_come_back_oldest_first_with_filters(engine: AsyncEngine) -> None:
    await seed(engine)
    async with engine.connect() as conn:
        mine = await export.questions(conn, community=C)
        assert [q.id for q in mine] == ["q1", "q2"]
        assert mine[1].first_answer_ts == at(70) and mine[1].state is QState.ANSWERED
        assert mine[1].asked_ts.tzinfo is not None
        assert mine[1].answers == [] and mine[1].credited == []  # left out unless asked for
        linked = await export.questions(conn, community=C, links=True)
        assert linked[1].answers == ["m9"] and linked[1].credited == ["ann"]
        assert [q.id for q in await export.questions(conn, community=C, room="dev")] == ["q2"]
        assert [q.id for q in await export.questions(conn, community=C, since=at(1), until=at(61))] == ["q2"]
        assert len(await export.questions(conn)) == 3
        assert await export.communities(conn) == [C, "other"]


async def test_help_edges_come_back_in_time_order_with_filters(engine: AsyncEngine) -> None:
    await seed(engine)
    async with engine.connect() as conn:
        edges = await export.help_edges(conn, community=C)
        assert [(e.helper, e.kind, e.ts) for e in edges] == [
            ("cat", "answer", at(-30)), ("ann", "answer", at(70)), ("ann", "credit", at(75))]
        assert [e.kind for e in await export.help_edges(conn, community=C, since=at(72))] == ["credit"]
        assert await export.help_edges(conn, community="nobody") == []


async def test_first_seen_is_the_earliest_question_or_help_given(engine: AsyncEngine) -> None:
    await seed(engine)
    async with engine.connect() as conn:
        seen = await export.first_seen(conn, C, ["ann", "bob", "cat", "ghost"])
    # ann asked at 0 but helped only later; cat only helped; ann's question in "other" does not count here.
    assert seen == {"ann": at(0), "bob": at(60), "cat": at(-30)}


async def test_first_seen_answers_for_more_members_than_one_query_takes(engine: AsyncEngine) -> None:
    members = [f"m{i}" for i in range(export._IN_CHUNK * 2 + 7)]
    async with SqlStore(engine).transaction() as tx:
        for i, m in enumerate(members):
            tx.questions.save(Question(C, f"q{i}", "help", m, at(i)))
    async with engine.connect() as conn:
        seen = await export.first_seen(conn, C, members)
    assert len(seen) == len(members) and seen[members[-1]] == at(len(members) - 1)


async def test_the_report_salt_is_created_once_and_kept(engine: AsyncEngine) -> None:
    first = await export.report_salt(engine)
    assert len(first) == 32
    assert await export.report_salt(engine) == first


async def test_load_history_reads_one_community_or_all(engine: AsyncEngine) -> None:
    await seed(engine)
    qs, es = await export.load_history(engine, C)
    assert {q.community for q in qs} == {C} and len(es) == 3
    qs, _ = await export.load_history(engine)
    assert len(qs) == 3


async def test_replay_history_returns_the_replays_questions_and_edges() -> None:
    events = [
        Message(C, "help", "m1", at(0), "ann", "How do I reset my password?"),
        Message(C, "help", "m2", at(3), "bob", "Use the reset link on the login page.", reply_to="m1"),
        Message(C, "help", "m3", at(5), "ann", "thanks, that worked!", reply_to="m2"),
    ]
    qs, es = await export.replay_history(events, Settings())
    assert [(q.id, q.author, q.first_answer_ts) for q in qs] == [("m1", "ann", at(3))]
    assert {(e.helper, e.asker, e.kind) for e in es} >= {("bob", "ann", "answer")}
