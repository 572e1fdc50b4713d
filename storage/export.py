"""Read-only exports of lien's history for health metrics and `lien report`: questions and help edges as core
dataclasses, from a live database or from an in-memory replay of an events file (`replay_history`).

Reads take an `AsyncConnection` (so a repository can call them inside its own transaction, after flushing) or go
through `load_history`, which opens its own. Repeated strings (communities, rooms, authors) are shared, so a
million-event history stays small in memory.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, Table, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.config import Settings
from bot.events import Event
from bot.model import HelpEdge, QState, Question
from storage.models import HelpEdgeRow, KvRow, QuestionRow

QUESTIONS: Table = QuestionRow.__table__  # type: ignore[assignment]
EDGES: Table = HelpEdgeRow.__table__  # type: ignore[assignment]
KV: Table = KvRow.__table__  # type: ignore[assignment]
#: Key of the report pseudonym salt in the `kv` table.
SALT_KEY = "report.salt"

#: Rows fetched per round trip when streaming a whole table.
_CHUNK = 20_000
#: Members per `IN (...)` list in `first_seen` (below SQLite's and PostgreSQL's bound-parameter limits).
_IN_CHUNK = 500

History = tuple[list[Question], list[HelpEdge]]


class _Interner:
    """One shared str object per distinct value (a dict is faster than `sys.intern` for arbitrary ids)."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        return self._seen.setdefault(value, value)


def _scoped(stmt: Select[Any], table: Table, ts: Any, community: str | None, room: str | None,
            since: datetime | None, until: datetime | None) -> Select[Any]:
    if community is not None:
        stmt = stmt.where(table.c.community == community)
    if room is not None:
        stmt = stmt.where(table.c.room == room)
    if since is not None:
        stmt = stmt.where(ts >= since)
    if until is not None:
        stmt = stmt.where(ts < until)
    return stmt


async def communities(conn: AsyncConnection) -> list[str]:
    """Communities with at least one question or help edge, in id order."""
    stmt = union_all(select(QUESTIONS.c.community).distinct(), select(EDGES.c.community).distinct())
    return sorted({row[0] for row in (await conn.execute(stmt)).all()})


async def _chunks(conn: AsyncConnection, stmt: Select[Any]) -> AsyncIterator[Sequence[Sequence[Any]]]:
    """The statement's rows, `_CHUNK` at a time: raw driver tuples on SQLite, processed rows elsewhere.

    On SQLite the statement runs as driver SQL on the connection's own aiosqlite connection (same transaction):
    SQLAlchemy's per-row processing costs more than the whole read for a million rows.
    """
    if conn.dialect.name != "sqlite":
        result = await conn.stream(stmt.execution_options(yield_per=_CHUNK))
        async for part in result.partitions():
            yield part
        return
    compiled = stmt.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    args = tuple(_sqlite_arg(params[name]) for name in compiled.positiontup or ())
    raw = (await conn.get_raw_connection()).driver_connection
    cursor = await raw.execute(str(compiled), args)
    try:
        while rows := await cursor.fetchmany(_CHUNK):
            yield rows
    finally:
        await cursor.close()


def _sqlite_arg(value: Any) -> Any:
    """A bound value as SQLite stores it: timestamps as UTC wall-clock text (see `storage.models.UtcDateTime`)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


def _readers(conn: AsyncConnection) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """(timestamp, JSON list) converters for the values `_chunks` yields on this connection's dialect."""
    if conn.dialect.name == "sqlite":
        return _sqlite_ts, json.loads
    return _same, _same


def _sqlite_ts(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _same(value: Any) -> Any:
    return value


async def questions(conn: AsyncConnection, *, community: str | None = None, room: str | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    links: bool = False) -> list[Question]:
    """Questions asked in `[since, until)` (either bound optional), oldest first.

    `answers` and `credited` stay empty unless `links` is set: metrics never need them, and they are most of a
    question's memory.
    """
    cols = [QUESTIONS.c.community, QUESTIONS.c.id, QUESTIONS.c.room, QUESTIONS.c.author, QUESTIONS.c.asked_ts,
            QUESTIONS.c.thread, QUESTIONS.c.state, QUESTIONS.c.answered_by, QUESTIONS.c.first_answer_ts,
            QUESTIONS.c.resolved_ts, QUESTIONS.c.nudges, QUESTIONS.c.level]
    if links:
        cols += [QUESTIONS.c.answers, QUESTIONS.c.credited]
    stmt = _scoped(select(*cols), QUESTIONS, QUESTIONS.c.asked_ts, community, room, since, until)
    stmt = stmt.order_by(QUESTIONS.c.asked_ts, QUESTIONS.c.community, QUESTIONS.c.id)
    ts, js = _readers(conn)
    intern = _Interner()
    states = {s.value: s for s in QState}
    out: list[Question] = []
    async for rows in _chunks(conn, stmt):
        for r in rows:
            out.append(Question(
                community=intern(r[0]), id=r[1], room=intern(r[2]), author=intern(r[3]), asked_ts=ts(r[4]),
                thread=r[5], state=states[r[6]], answered_by=r[7], first_answer_ts=ts(r[8]), resolved_ts=ts(r[9]),
                answers=list(js(r[12])) if links else [], credited=list(js(r[13])) if links else [],
                nudges=r[10], level=r[11],
            ))
    return out


async def help_edges(conn: AsyncConnection, *, community: str | None = None, room: str | None = None,
                     since: datetime | None = None, until: datetime | None = None) -> list[HelpEdge]:
    """Help edges whose time is in `[since, until)` (either bound optional), in time order."""
    cols = [EDGES.c.community, EDGES.c.room, EDGES.c.helper, EDGES.c.asker, EDGES.c.question, EDGES.c.kind,
            EDGES.c.ts]
    stmt = _scoped(select(*cols), EDGES, EDGES.c.ts, community, room, since, until)
    stmt = stmt.order_by(EDGES.c.ts, EDGES.c.community, EDGES.c.question, EDGES.c.helper, EDGES.c.kind)
    ts, _ = _readers(conn)
    intern = _Interner()
    out: list[HelpEdge] = []
    async for rows in _chunks(conn, stmt):
        for r in rows:
            out.append(HelpEdge(community=intern(r[0]), room=intern(r[1]), helper=intern(r[2]), asker=intern(r[3]),
                                question=r[4], kind=intern(r[5]), ts=ts(r[6])))
    return out


async def first_seen(conn: AsyncConnection, community: str, members: Sequence[str]) -> dict[str, datetime]:
    """Each member's earliest question or help given in the stored history (the newcomer metric's "first seen")."""
    seen: dict[str, datetime] = {}
    for i in range(0, len(members), _IN_CHUNK):
        chunk = list(members[i : i + _IN_CHUNK])
        asked = (select(QUESTIONS.c.author.label("m"), func.min(QUESTIONS.c.asked_ts).label("ts"))
                 .where(QUESTIONS.c.community == community, QUESTIONS.c.author.in_(chunk))
                 .group_by(QUESTIONS.c.author))
        helped = (select(EDGES.c.helper.label("m"), func.min(EDGES.c.ts).label("ts"))
                  .where(EDGES.c.community == community, EDGES.c.helper.in_(chunk))
                  .group_by(EDGES.c.helper))
        for stmt in (asked, helped):
            for member, ts in (await conn.execute(stmt)).all():
                if member not in seen or ts < seen[member]:
                    seen[member] = ts
    return seen


async def report_salt(engine: AsyncEngine) -> str:
    """The database's secret salt for report pseudonyms, created on first use (so pseudonyms stay stable)."""
    async with engine.begin() as conn:
        value = (await conn.execute(select(KV.c.value).where(KV.c.key == SALT_KEY))).scalar_one_or_none()
        if value is None:
            value = secrets.token_hex(16)
            await conn.execute(KV.insert().values(key=SALT_KEY, value=value))
        return str(value)


async def load_history(engine: AsyncEngine, community: str | None = None) -> History:
    """Every stored question (without answer links) and help edge, of one community or all, oldest first."""
    async with engine.connect() as conn:
        return (await questions(conn, community=community), await help_edges(conn, community=community))


async def replay_into(engine: AsyncEngine, events: Iterable[Event], settings: Settings, *,
                      until: datetime | None = None) -> None:
    """Migrate `engine`'s database and replay `events` into it with `bot.simulate.Simulation`, dropping actions."""
    from bot.simulate import Simulation
    from storage.migrate import upgrade
    from storage.repositories import SqlStore

    await upgrade(engine)
    sim = Simulation(settings, SqlStore(engine))
    await sim.run(events, lambda _action: None, until)


async def replay_history(events: Iterable[Event], settings: Settings, *, until: datetime | None = None) -> History:
    """Replay `events` in memory (`bot.history.replay_history`: the question tracker and the engine's help edges,
    no nudges, no database) and return every question and help edge, sorted as `load_history` returns them.

    `until` is when unanswered questions are judged stale or still open (default: the last event). A database
    replay through the whole engine, nudges included, is `replay_into`.
    """
    from bot.history import replay_history as replay

    return replay(events, settings, until=until)
