"""SQL implementations of `bot.ports`: `SqlStore.transaction()` yields a `SqlTx` whose repos map rows to `bot.model`.

Writes (`add`, `save`, `put`, `set`, `mark_sent`) only buffer, in memory, per table; the buffer is written with one
executemany per table at commit, and before a read of the same transaction touches that table, so reads see it.
Inserts of immutable facts (messages, answers, help edges, outbox entries, seen keys) are `INSERT ... ON CONFLICT
DO NOTHING` (the first write wins, so a replayed event changes nothing); mutable records (questions, nudges,
members, kv) are upserts (the last save wins).

On SQLite the hot paths (buffer flushes, repository reads) run as SQL compiled once by SQLAlchemy and executed
on the aiosqlite connection in one call each; PostgreSQL goes through SQLAlchemy. Retention and privacy
(`purge`, `forget_member`, `member_data`) always go through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from operator import itemgetter
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from bot.model import (
    Answer,
    HelpEdge,
    MemberPrefs,
    MessageMeta,
    Nudge,
    NudgeState,
    OutboxItem,
    QState,
    Question,
    SentPing,
    SentReminder,
)
from storage import export
from storage.db import SQLITE_IMMEDIATE, json_dumps
from storage.models import (
    AnswerRow,
    GuardStrikeRow,
    HelpAggregateRow,
    HelpEdgeRow,
    KvRow,
    MemberRow,
    MessageRow,
    NudgeRow,
    OutboxRow,
    QuestionRow,
    SeenEventRow,
    UtcDateTime,
)

MESSAGES: Table = MessageRow.__table__  # type: ignore[assignment]
QUESTIONS: Table = QuestionRow.__table__  # type: ignore[assignment]
ANSWERS: Table = AnswerRow.__table__  # type: ignore[assignment]
EDGES: Table = HelpEdgeRow.__table__  # type: ignore[assignment]
AGGREGATES: Table = HelpAggregateRow.__table__  # type: ignore[assignment]
NUDGES: Table = NudgeRow.__table__  # type: ignore[assignment]
MEMBERS: Table = MemberRow.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]
KV: Table = KvRow.__table__  # type: ignore[assignment]
SEEN: Table = SeenEventRow.__table__  # type: ignore[assignment]
STRIKES: Table = GuardStrikeRow.__table__  # type: ignore[assignment]

#: Question states that can still get answers; the others are closed.
_OPEN_STATES = (QState.OPEN.value, QState.STALE.value)

#: Tables whose rows refer to questions (foreign keys): flushing them flushes questions first.
_CHILDREN = frozenset({"answers", "nudges"})

#: Tables in the order buffers are written: questions before the answers and nudges that refer to them.
_WRITE_ORDER: tuple[tuple[Table, bool], ...] = (
    (MESSAGES, False),
    (QUESTIONS, True),
    (ANSWERS, False),
    (EDGES, False),
    (NUDGES, True),
    (MEMBERS, True),
    (OUTBOX, False),
    (KV, True),
    (SEEN, False),
    (STRIKES, False),
)

_Params = dict[str, Any]


def _insert_for(dialect: str) -> Callable[[Table], Insert]:
    if dialect == "sqlite":
        return sqlite.insert  # type: ignore[return-value]
    if dialect == "postgresql":
        return postgresql.insert  # type: ignore[return-value]
    raise NotImplementedError(f"lien storage supports SQLite and PostgreSQL, not {dialect}")


_statement_cache: dict[tuple[str, str], Insert] = {}


def _write_statement(dialect: str, table: Table, upsert: bool) -> Insert:
    """`INSERT ... ON CONFLICT DO NOTHING`, or an upsert replacing every non-key column, for `table`."""
    cached = _statement_cache.get((dialect, table.name))
    if cached is not None:
        return cached
    stmt: Any = _insert_for(dialect)(table)
    keys = [c.name for c in table.primary_key.columns]
    if upsert:
        stmt = stmt.on_conflict_do_update(
            index_elements=keys,
            set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys},
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    _statement_cache[(dialect, table.name)] = stmt
    return stmt


class _SqlitePlan:
    """A buffered table's write on SQLite as driver SQL plus per-row tuples (skips SQLAlchemy's per-row binding).

    Values are converted exactly as the column types would: aware timestamps to UTC text in SQLAlchemy's
    SQLite format (so comparisons with bound parameters stay text comparisons of one format), JSON to text.
    """

    def __init__(self, dialect: Dialect, table: Table, upsert: bool) -> None:
        compiled = _write_statement(dialect.name, table, upsert).compile(dialect=dialect)
        names = list(compiled.positiontup or ())
        self.sql = str(compiled)
        self.get = itemgetter(*names)
        self.single = len(names) == 1
        self.convert = [
            (i, _sqlite_ts if isinstance(table.c[n].type, UtcDateTime) else json_dumps)
            for i, n in enumerate(names)
            if isinstance(table.c[n].type, UtcDateTime | JSON)
        ]

    def rows(self, params: Iterable[_Params]) -> list[tuple[Any, ...]]:
        get, convert = self.get, self.convert
        if self.single:
            return [(get(p),) for p in params]
        if not convert:
            return [get(p) for p in params]
        out = []
        for p in params:
            values = list(get(p))
            for i, fn in convert:
                values[i] = fn(values[i])
            out.append(tuple(values))
        return out


_sqlite_plans: dict[str, _SqlitePlan] = {}


def _sqlite_plan(dialect: Dialect, table: Table, upsert: bool) -> _SqlitePlan:
    plan = _sqlite_plans.get(table.name)
    if plan is None:
        plan = _sqlite_plans[table.name] = _SqlitePlan(dialect, table, upsert)
    return plan


#: Recent timestamps and their stored text: a message's time is also its question's, answer's and help edge's.
_TS_TEXT: dict[datetime, str] = {}
_TS_TEXT_MAX = 65_536  # a batch of 10,000 events writes ~30,000 distinct times


def _sqlite_ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = _TS_TEXT.get(value)  # equal instants in any zone share one text, as they share one hash
    if text is None:
        text = _sqlite_ts_text(value)
        if len(_TS_TEXT) >= _TS_TEXT_MAX:
            _TS_TEXT.clear()
        _TS_TEXT[value] = text
    return text


def _sqlite_ts_text(value: datetime) -> str:
    if value.tzinfo is UTC:
        # The common case, written without a copy: "YYYY-MM-DD HH:MM:SS.ffffff" is the text before "+00:00".
        return value.isoformat(" ", "microseconds")[:26]
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"naive datetime {value!r}: lien stores tz-aware UTC timestamps only")
    if offset:
        value = value - offset
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _json_token(value: str) -> str:
    """`value` as it appears inside the stored JSON text (as a whole list element, quotes included)."""
    return json_dumps(value)


def _json_mentions(column: Any, value: str) -> ColumnElement[bool]:
    """SQL prefilter: the JSON column's text contains `value` as a string element (rechecked in Python)."""
    return cast(column, Text).contains(_json_token(value), autoescape=True)


def _text_mentions(column: Any, value: str) -> ColumnElement[bool]:
    """SQL: the column's text contains `value` anywhere (for free-form keys and payloads)."""
    inner = _json_token(value)[1:-1]
    return cast(column, Text).contains(inner, autoescape=True)


# -- reads -------------------------------------------------------------------------------------------------------


class _Read:
    """A read statement built once, with named bind parameters, and the buffers it must see flushed first.

    On SQLite it runs as driver SQL in a single aiosqlite call: SQLAlchemy's aiosqlite adapter makes four thread
    round trips per statement, about ten times the latency of a small indexed read. Other dialects run it through
    SQLAlchemy as usual. Both return records with attribute access by column key.
    """

    def __init__(self, stmt: Select[Any], *tables: Table) -> None:
        self.stmt = stmt
        self.tables = frozenset(t.name for t in tables)
        self._sqlite: _SqliteRead | None = None

    def sqlite(self, dialect: Dialect) -> _SqliteRead:
        if self._sqlite is None:
            self._sqlite = _SqliteRead(self.stmt, dialect)
        return self._sqlite


class _SqliteRead:
    """A `_Read` compiled for SQLite: SQL text, argument order and per-column result converters."""

    def __init__(self, stmt: Select[Any], dialect: Dialect) -> None:
        self.compiled = stmt.compile(dialect=dialect)
        self.sql = str(self.compiled)
        self.names = tuple(self.compiled.positiontup or ())
        self.record = namedtuple("_Record", list(stmt.selected_columns.keys()))  # type: ignore[misc]
        self.convert = [
            (i, fn) for i, column in enumerate(stmt.selected_columns) if (fn := _sqlite_reader(column.type)) is not None
        ]

    def args(self, values: dict[str, Any]) -> tuple[Any, ...]:
        params = self.compiled.construct_params(values)
        return tuple(_sqlite_arg(params[name]) for name in self.names)

    def records(self, rows: Iterable[Sequence[Any]]) -> list[Any]:
        make, convert = self.record._make, self.convert
        if not convert:
            return [make(row) for row in rows]
        out = []
        for row in rows:
            values = list(row)
            for i, fn in convert:
                if values[i] is not None:
                    values[i] = fn(values[i])
            out.append(make(values))
        return out


def _parse_ts(text: str) -> datetime:
    # Appending the offset costs a tenth of a `replace(tzinfo=UTC)` call on the parsed value.
    return datetime.fromisoformat(text + "+00:00")


#: A state (member or its text: a StrEnum member is equal to its text) -> the plain text stored. A lookup costs a
#: tenth of calling the enum; an unknown state still raises (KeyError).
_QSTATE = {s.value: s.value for s in QState}
_NUDGE_STATE = {s.value: s.value for s in NudgeState}
#: The stored text -> the state, for rows read back (a lookup, not an enum call; an unknown text raises KeyError).
_QSTATE_OF = {s.value: s for s in QState}
_NUDGE_STATE_OF = {s.value: s for s in NudgeState}


def _json_loads(text: str) -> Any:
    if text == "[]":
        return []  # most stored lists are empty: no decoder call for those
    try:
        return orjson.loads(text)  # the rest are short lists of ids: a third of the standard decoder's time
    except orjson.JSONDecodeError:
        return json.loads(text)  # what orjson refuses (NaN, lone surrogates) reads as before


def _sqlite_reader(type_: Any) -> Callable[[Any], Any] | None:
    if isinstance(type_, UtcDateTime):
        return _parse_ts
    if isinstance(type_, JSON):
        return _json_loads
    if isinstance(type_, Boolean):
        return bool
    return None


def _sqlite_arg(value: Any) -> Any:
    if isinstance(value, datetime):
        return _sqlite_ts(value)
    if isinstance(value, list | tuple | dict):
        return json_dumps(value)
    return value


def _wrapped(exc: sqlite3.Error, sql: str, args: Any) -> Exception:
    """The SQLAlchemy exception (IntegrityError, OperationalError...) SQLAlchemy itself would have raised."""
    return DBAPIError.instance(sql, args, exc, sqlite3.Error)


def _json_list(param: str) -> Select[Any]:
    """SQLite: the elements of the JSON list bound to `param`, as a subquery for IN."""
    return select(literal_column("value")).select_from(func.json_each(bindparam(param)))


class SqlTx:
    """One unit of work on one connection: buffered writes, reads that flush first."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._dialect = conn.dialect.name
        self._buffers: dict[str, dict[Any, _Params]] = {table.name: {} for table, _ in _WRITE_ORDER}
        self._sent: dict[str, datetime] = {}
        self._dirty = False
        self._driver: Any = None
        self.messages = SqlMessageRepo(self)
        self.questions = SqlQuestionRepo(self)
        self.answers = SqlAnswerRepo(self)
        self.edges = SqlHelpRepo(self)
        self.nudges = SqlNudgeRepo(self)
        self.members = SqlMemberRepo(self)
        self.outbox = SqlOutboxRepo(self)
        self.kv = SqlKvRepo(self)
        self.seen = SqlSeenRepo(self)
        self.strikes = SqlStrikeRepo(self)

    # -- buffering -------------------------------------------------------------------------------------------

    def _keep_first(self, table: Table, key: Any, params: _Params) -> None:
        buffer = self._buffers[table.name]
        if key not in buffer:
            buffer[key] = params
            self._dirty = True

    def _keep_last(self, table: Table, key: Any, params: _Params) -> None:
        self._buffers[table.name][key] = params
        self._dirty = True

    def _buffered(self, table: Table, key: Any) -> _Params | None:
        return self._buffers[table.name].get(key)

    def _buffer(self, table: Table) -> dict[Any, _Params]:
        """The rows of `table` buffered and not yet written, by key."""
        return self._buffers[table.name]

    def _mark_sent(self, key: str, ts: datetime) -> None:
        self._sent[key] = ts
        self._dirty = True

    async def flush(self, tables: frozenset[str] | None = None) -> None:
        """Write buffered rows (one executemany per table) into the open transaction: all, or those of `tables`."""
        if not self._dirty:
            return
        if tables is not None and tables & _CHILDREN:
            tables = tables | {QUESTIONS.name}  # parents first: answers and nudges refer to questions
        for table, upsert in _WRITE_ORDER:
            buffer = self._buffers[table.name]
            if not buffer or (tables is not None and table.name not in tables):
                continue
            rows = list(buffer.values())
            buffer.clear()
            if self._dialect == "sqlite":
                plan = _sqlite_plan(self._conn.dialect, table, upsert)
                args = plan.rows(rows)
                try:
                    await (await self._sqlite()).executemany(plan.sql, args)
                except sqlite3.Error as exc:
                    raise _wrapped(exc, plan.sql, args[:1]) from exc
            else:
                await self._conn.execute(_write_statement(self._dialect, table, upsert), rows)
        if self._sent and (tables is None or OUTBOX.name in tables):
            params = [{"k": key, "s": ts} for key, ts in self._sent.items()]
            self._sent.clear()
            stmt = update(OUTBOX).where(OUTBOX.c.key == bindparam("k")).values(sent_at=bindparam("s"))
            await self._conn.execute(stmt, params)
        self._dirty = bool(self._sent) or any(self._buffers.values())

    async def _sqlite(self) -> Any:
        """The aiosqlite connection under this transaction (same connection, same transaction)."""
        if self._driver is None:
            self._driver = (await self._conn.get_raw_connection()).driver_connection
        return self._driver

    async def _fetch(self, read: _Read, *, flush: bool = True, **values: Any) -> list[Any]:
        """Run a prepared read after flushing the buffers it depends on; records with attribute access.

        `flush=False` is for primary-key lookups whose caller already looked in the buffer: a key absent from the
        buffer is answered completely by the database, so a replay need not write its batch early.
        """
        if flush:
            await self.flush(read.tables)
        if self._dialect != "sqlite":
            return list((await self._conn.execute(read.stmt, values)).all())
        plan = read.sqlite(self._conn.dialect)
        args = plan.args(values)
        try:
            rows = await (await self._sqlite()).execute_fetchall(plan.sql, args)
        except sqlite3.Error as exc:
            raise _wrapped(exc, plan.sql, args) from exc
        return plan.records(rows)

    async def _rows(self, stmt: Any) -> Sequence[Row[Any]]:
        await self.flush()
        return (await self._conn.execute(stmt)).all()

    async def _count(self, stmt: Any) -> int:
        result = await self._conn.execute(stmt)
        return max(result.rowcount, 0)

    # -- privacy and retention -------------------------------------------------------------------------------

    def _naming(self, community: str, member: str) -> dict[str, ColumnElement[bool]]:
        """Per table, the rows naming `member` (JSON columns by SQL prefilter; callers recheck them)."""
        asked = select(QUESTIONS.c.id).where(QUESTIONS.c.community == community, QUESTIONS.c.author == member)
        return {
            "messages": and_(MESSAGES.c.community == community, MESSAGES.c.author == member),
            "questions": and_(
                QUESTIONS.c.community == community,
                or_(
                    QUESTIONS.c.author == member,
                    QUESTIONS.c.answered_by == member,
                    _json_mentions(QUESTIONS.c.credited, member),
                ),
            ),
            "answers": and_(
                ANSWERS.c.community == community,
                or_(ANSWERS.c.author == member, ANSWERS.c.question.in_(asked)),
            ),
            "help_edges": and_(EDGES.c.community == community, or_(EDGES.c.helper == member, EDGES.c.asker == member)),
            "help_aggregates": and_(
                AGGREGATES.c.community == community,
                or_(AGGREGATES.c.helper == member, AGGREGATES.c.asker == member),
            ),
            "nudges": and_(
                NUDGES.c.community == community,
                or_(NUDGES.c.question.in_(asked), _json_mentions(NUDGES.c.mentioned, member)),
            ),
            "members": and_(MEMBERS.c.community == community, MEMBERS.c.member == member),
            "outbox": and_(OUTBOX.c.community == community, _text_mentions(OUTBOX.c.payload, member)),
            "seen_events": and_(SEEN.c.community == community, _text_mentions(SEEN.c.key, member)),
            "guard_strikes": and_(STRIKES.c.community == community, STRIKES.c.member == member),
        }

    async def member_data(self, community: str, member: str) -> dict[str, list[dict[str, object]]]:
        """Every row naming the member, per table, as JSON-ready values (timestamps as ISO 8601 UTC strings)."""
        await self.flush()
        tables = {t.name: t for t, _ in _WRITE_ORDER} | {AGGREGATES.name: AGGREGATES}
        found: dict[str, list[dict[str, object]]] = {}
        for name, where in self._naming(community, member).items():
            table = tables[name]
            rows = (await self._conn.execute(select(table).where(where).order_by(*table.primary_key))).all()
            plain = [{k: _plain(v) for k, v in row._mapping.items()} for row in rows]
            if name == "questions":
                plain = [r for r in plain if member in (r["author"], r["answered_by"]) or member in r["credited"]]
            elif name == "nudges":
                asked = {q["id"] for q in found["questions"] if q["author"] == member}
                plain = [r for r in plain if r["question"] in asked or member in r["mentioned"]]
            found[name] = plain
        return found

    async def forget_member(self, community: str, member: str) -> dict[str, int]:
        """Delete every row naming the member and scrub them from others' rows; counts per table.

        Rows of other people that merely mention the member (a question they answered or were credited on, a
        nudge that pinged them) are kept with the member removed; those are counted as `<table>_scrubbed`.
        """
        await self.flush()
        naming = self._naming(community, member)
        counts: dict[str, int] = {}
        own_messages = {
            r[0]
            for r in await self._rows(
                select(MESSAGES.c.id).where(MESSAGES.c.community == community, MESSAGES.c.author == member)
            )
        } | {
            r[0]
            for r in await self._rows(
                select(ANSWERS.c.message).where(ANSWERS.c.community == community, ANSWERS.c.author == member)
            )
        }
        counts["questions_scrubbed"] = await self._scrub_questions(community, member, own_messages)
        counts["nudges_scrubbed"] = await self._scrub_nudges(community, member)
        for table in (NUDGES, ANSWERS, EDGES, AGGREGATES, MESSAGES, MEMBERS, OUTBOX, SEEN, STRIKES):
            counts[table.name] = await self._count(delete(table).where(naming[table.name]))
        counts["questions"] = await self._count(
            delete(QUESTIONS).where(QUESTIONS.c.community == community, QUESTIONS.c.author == member)
        )
        return counts

    async def _scrub_questions(self, community: str, member: str, own_messages: set[str]) -> int:
        answered = select(ANSWERS.c.question).where(ANSWERS.c.community == community, ANSWERS.c.author == member)
        rows = await self._rows(
            select(QUESTIONS.c.id, QUESTIONS.c.answered_by, QUESTIONS.c.first_answer_ts, QUESTIONS.c.answers,
                   QUESTIONS.c.credited).where(
                QUESTIONS.c.community == community,
                QUESTIONS.c.author != member,
                or_(_json_mentions(QUESTIONS.c.credited, member), QUESTIONS.c.id.in_(answered)),
            )
        )
        changes = []
        for qid, answered_by, first_ts, answers, credited in rows:
            new_answers = [m for m in answers if m not in own_messages]
            new_credited = [m for m in credited if m != member]
            new_by, new_ts = answered_by, first_ts
            if answered_by in own_messages:
                # Their answer came first: the earliest answer left takes its place (as the tracker does), so
                # the row no longer points at the forgotten member's message.
                first = (await self._rows(
                    select(ANSWERS.c.message, ANSWERS.c.ts)
                    .where(ANSWERS.c.community == community, ANSWERS.c.question == qid, ANSWERS.c.author != member)
                    .order_by(ANSWERS.c.ts, ANSWERS.c.message).limit(1)
                ))
                new_by, new_ts = (first[0][0], first[0][1]) if first else (None, None)
            if (new_answers, new_credited, new_by, new_ts) != (answers, credited, answered_by, first_ts):
                changes.append({"q": qid, "a": new_answers, "c": new_credited, "b": new_by, "t": new_ts})
        if changes:
            stmt = (
                update(QUESTIONS)
                .where(QUESTIONS.c.community == community, QUESTIONS.c.id == bindparam("q"))
                .values(answers=bindparam("a"), credited=bindparam("c"), answered_by=bindparam("b"),
                        first_answer_ts=bindparam("t"))
            )
            await self._conn.execute(stmt, changes)
        return len(changes)

    async def _scrub_nudges(self, community: str, member: str) -> int:
        rows = await self._rows(
            select(NUDGES.c.question, NUDGES.c.level, NUDGES.c.mentioned, NUDGES.c.why).where(
                NUDGES.c.community == community, _json_mentions(NUDGES.c.mentioned, member)
            )
        )
        changes = []
        for question, level, mentioned, why in rows:
            if member not in mentioned:
                continue
            # `why` runs parallel to `mentioned` (one line per person): drop the member's line with them.
            keep = [i for i, m in enumerate(mentioned) if m != member]
            changes.append(
                {
                    "q": question,
                    "l": level,
                    "m": [mentioned[i] for i in keep],
                    "w": [why[i] for i in keep if i < len(why)],
                }
            )
        if changes:
            stmt = (
                update(NUDGES)
                .where(
                    NUDGES.c.community == community,
                    NUDGES.c.question == bindparam("q"),
                    NUDGES.c.level == bindparam("l"),
                )
                .values(mentioned=bindparam("m"), why=bindparam("w"))
            )
            await self._conn.execute(stmt, changes)
        return len(changes)

    async def purge(self, before: datetime) -> dict[str, int]:
        """Retention: fold help edges older than `before` into aggregates, then delete old rows.

        Deleted: help edges, messages, answers and seen keys older than `before`; closed questions whose
        closing time (resolved, else first answer, else asked) is older; non-pending nudges due before it; sent
        outbox rows created before it. Open and stale questions and pending nudges are kept whatever their age.
        """
        await self.flush()
        counts = {"help_aggregates": await self._fold_edges(before)}
        counts["help_edges"] = await self._count(delete(EDGES).where(EDGES.c.ts < before))
        counts["nudges"] = await self._count(
            delete(NUDGES).where(NUDGES.c.state != NudgeState.PENDING.value, NUDGES.c.due < before)
        )
        counts["answers"] = await self._count(delete(ANSWERS).where(ANSWERS.c.ts < before))
        closed_at = func.coalesce(QUESTIONS.c.resolved_ts, QUESTIONS.c.first_answer_ts, QUESTIONS.c.asked_ts)
        counts["questions"] = await self._count(
            delete(QUESTIONS).where(QUESTIONS.c.state.not_in(_OPEN_STATES), closed_at < before)
        )
        counts["messages"] = await self._count(delete(MESSAGES).where(MESSAGES.c.ts < before))
        counts["outbox"] = await self._count(
            delete(OUTBOX).where(OUTBOX.c.sent_at.is_not(None), OUTBOX.c.created < before)
        )
        counts["seen_events"] = await self._count(delete(SEEN).where(SEEN.c.ts < before))
        return counts

    async def _fold_edges(self, before: datetime) -> int:
        groups = (
            EDGES.c.community,
            EDGES.c.room,
            EDGES.c.helper,
            EDGES.c.asker,
            EDGES.c.kind,
        )
        rows = await self._rows(
            select(*groups, func.count(), func.min(EDGES.c.ts), func.max(EDGES.c.ts))
            .where(EDGES.c.ts < before)
            .group_by(*groups)
        )
        if not rows:
            return 0
        params = [
            {
                "community": r[0],
                "room": r[1],
                "helper": r[2],
                "asker": r[3],
                "kind": r[4],
                "count": r[5],
                "first_ts": r[6],
                "last_ts": r[7],
            }
            for r in rows
        ]
        stmt: Any = _insert_for(self._dialect)(AGGREGATES)
        new = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[c.name for c in AGGREGATES.primary_key.columns],
            set_={
                "count": AGGREGATES.c.count + new["count"],
                "first_ts": case((new.first_ts < AGGREGATES.c.first_ts, new.first_ts), else_=AGGREGATES.c.first_ts),
                "last_ts": case((new.last_ts > AGGREGATES.c.last_ts, new.last_ts), else_=AGGREGATES.c.last_ts),
            },
        )
        await self._conn.execute(stmt, params)
        return len(params)


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class SqlStore:
    """`bot.ports.Store` on an async engine: one `SqlTx` per transaction, committed when the block succeeds.

    Transactions of one store run one at a time, in the order they were asked for: the engine's in-memory state
    assumes events are applied one after another, and SQLite has a single writer anyway. A transaction opened
    inside another one of the same task would wait for itself forever, so it raises instead.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTx]:
        """A unit of work: buffered writes are flushed and committed on success, discarded on error."""
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            raise RuntimeError("SqlStore.transaction() opened inside another transaction of the same task")
        async with self._lock:
            self._owner = task
            try:
                async with self._engine.connect() as conn:
                    await conn.execution_options(**{SQLITE_IMMEDIATE: True})
                    async with conn.begin():
                        tx = SqlTx(conn)
                        yield tx
                        await tx.flush()
            finally:
                self._owner = None


class _Repo:
    def __init__(self, tx: SqlTx) -> None:
        self._tx = tx


def _p(name: str) -> Any:
    return bindparam(name)


_OPEN = or_(QUESTIONS.c.state == QState.OPEN.value, QUESTIONS.c.state == QState.STALE.value)
_CLOSED_AT = func.coalesce(QUESTIONS.c.resolved_ts, QUESTIONS.c.first_answer_ts, QUESTIONS.c.asked_ts)
_EDGE_ORDER = (EDGES.c.ts, EDGES.c.question, EDGES.c.helper, EDGES.c.kind)


def _pending_nudges() -> Select[Any]:
    """Pending nudges in due order; the order is the index's, so due work is one range of `ix_nudges_state_due`."""
    return (
        select(NUDGES)
        .where(NUDGES.c.state == NudgeState.PENDING.value)
        .order_by(NUDGES.c.due, NUDGES.c.community, NUDGES.c.question, NUDGES.c.level)
    )


def _edges_between(helpers_in: Callable[[Any], Any]) -> Select[Any]:
    return (
        select(EDGES)
        .where(
            EDGES.c.community == _p("community"),
            EDGES.c.ts >= _p("since"),
            or_(
                and_(EDGES.c.asker == _p("asker"), helpers_in(EDGES.c.helper)),
                and_(EDGES.c.helper == _p("asker"), helpers_in(EDGES.c.asker)),
            ),
        )
        .order_by(*_EDGE_ORDER)
    )


_MESSAGE_GET = _Read(select(MESSAGES).where(MESSAGES.c.community == _p("c"), MESSAGES.c.id == _p("id")), MESSAGES)
_MESSAGES_RECENT = _Read(
    select(MESSAGES)
    .where(MESSAGES.c.community == _p("c"), MESSAGES.c.room == _p("room"))
    .order_by(MESSAGES.c.ts.desc(), MESSAGES.c.id.desc())
    .limit(_p("limit")),
    MESSAGES,
)
_ACTIVE_AUTHORS = _Read(
    select(MESSAGES.c.author, func.max(MESSAGES.c.ts).label("latest"))
    .where(MESSAGES.c.community == _p("c"), MESSAGES.c.room == _p("room"), MESSAGES.c.ts >= _p("since"))
    .group_by(MESSAGES.c.author)
    .order_by(MESSAGES.c.author),
    MESSAGES,
)
_QUESTION_GET = _Read(
    select(QUESTIONS).where(QUESTIONS.c.community == _p("c"), QUESTIONS.c.id == _p("id")), QUESTIONS
)
_QUESTIONS_LIVE = _Read(
    select(QUESTIONS)
    .where(or_(_OPEN, _p("since") <= _CLOSED_AT))
    .order_by(QUESTIONS.c.asked_ts, QUESTIONS.c.community, QUESTIONS.c.id),
    QUESTIONS,
)
_QUESTIONS_FIRST_PAGE = _Read(
    select(QUESTIONS).order_by(QUESTIONS.c.id, QUESTIONS.c.community).limit(_p("limit")), QUESTIONS
)
_QUESTIONS_PAGE = _Read(
    select(QUESTIONS)
    .where(tuple_(QUESTIONS.c.id, QUESTIONS.c.community) > tuple_(_p("id"), _p("c")))
    .order_by(QUESTIONS.c.id, QUESTIONS.c.community)
    .limit(_p("limit")),
    QUESTIONS,
)
_UNANSWERED = _Read(
    select(QUESTIONS)
    .where(QUESTIONS.c.community == _p("c"), _OPEN)
    .order_by(QUESTIONS.c.asked_ts, QUESTIONS.c.id)
    .limit(_p("limit")),
    QUESTIONS,
)
_UNANSWERED_IN_ROOM = _Read(
    select(QUESTIONS)
    .where(QUESTIONS.c.community == _p("c"), QUESTIONS.c.room == _p("room"), _OPEN)
    .order_by(QUESTIONS.c.asked_ts, QUESTIONS.c.id)
    .limit(_p("limit")),
    QUESTIONS,
)
_FIRST_ANSWER_DELAYS = _Read(
    select(QUESTIONS.c.asked_ts, QUESTIONS.c.first_answer_ts)
    .where(
        QUESTIONS.c.community == _p("c"),
        QUESTIONS.c.room == _p("room"),
        QUESTIONS.c.asked_ts >= _p("since"),
        QUESTIONS.c.first_answer_ts.is_not(None),
    )
    .order_by(QUESTIONS.c.asked_ts.desc(), QUESTIONS.c.id.desc())
    .limit(_p("limit")),
    QUESTIONS,
)
_STRIKES_SINCE = _Read(
    select(STRIKES).where(STRIKES.c.ts >= _p("since")).order_by(STRIKES.c.ts, STRIKES.c.community, STRIKES.c.member),
    STRIKES,
)
_ANSWERS_FOR_MESSAGE = _Read(
    select(ANSWERS)
    .where(ANSWERS.c.community == _p("c"), ANSWERS.c.message == _p("message"))
    .order_by(ANSWERS.c.ts, ANSWERS.c.question),
    ANSWERS,
)
_ANSWERS_FOR_QUESTION = _Read(
    select(ANSWERS)
    .where(ANSWERS.c.community == _p("c"), ANSWERS.c.question == _p("question"))
    .order_by(ANSWERS.c.ts, ANSWERS.c.message),
    ANSWERS,
)
# SQLite gets the helpers as one JSON list parameter (a prepared statement cannot take a list of any length).
_EDGES_BETWEEN_SQLITE = _Read(_edges_between(lambda col: col.in_(_json_list("helpers"))), EDGES)
_EDGES_BETWEEN = _Read(_edges_between(lambda col: col.in_(bindparam("helpers", expanding=True))), EDGES)
_EDGES_IN_ROOM = _Read(
    select(EDGES)
    .where(EDGES.c.community == _p("c"), EDGES.c.room == _p("room"), EDGES.c.ts >= _p("since"))
    .order_by(*_EDGE_ORDER),
    EDGES,
)
_NUDGES_PENDING = _Read(_pending_nudges(), NUDGES)
_NUDGES_DUE = _Read(_pending_nudges().where(NUDGES.c.due < _p("before")).limit(_p("limit")), NUDGES)
_NUDGES_FOR_QUESTION = _Read(
    select(NUDGES)
    .where(NUDGES.c.community == _p("c"), NUDGES.c.question == _p("question"))
    .order_by(NUDGES.c.level),
    NUDGES,
)
# Sent nudges since a time: one range of `ix_nudges_state_due` (level tested in the index), then the question row.
_SENT_SINCE = and_(NUDGES.c.state == NudgeState.SENT.value, NUDGES.c.due >= _p("since"), NUDGES.c.level == _p("level"))
_OF_QUESTION = and_(QUESTIONS.c.community == NUDGES.c.community, QUESTIONS.c.id == NUDGES.c.question)
_PINGS_SINCE = _Read(
    select(NUDGES.c.community, NUDGES.c.question, NUDGES.c.due, NUDGES.c.mentioned, QUESTIONS.c.state)
    .join(QUESTIONS, _OF_QUESTION)
    .where(_SENT_SINCE)
    .order_by(NUDGES.c.due, NUDGES.c.community, NUDGES.c.question),
    NUDGES,
    QUESTIONS,
)
_PINGED_HELPERS = _Read(
    select(EDGES.c.community, EDGES.c.question, EDGES.c.helper)
    .join(NUDGES, and_(NUDGES.c.community == EDGES.c.community, NUDGES.c.question == EDGES.c.question))
    .where(_SENT_SINCE),
    NUDGES,
    EDGES,
)
_REMINDERS_SINCE = _Read(
    select(NUDGES.c.community, QUESTIONS.c.room, QUESTIONS.c.author, func.max(NUDGES.c.due).label("ts"))
    .join(QUESTIONS, _OF_QUESTION)
    .where(_SENT_SINCE)
    .group_by(NUDGES.c.community, QUESTIONS.c.room, QUESTIONS.c.author)
    .order_by(NUDGES.c.community, QUESTIONS.c.room, QUESTIONS.c.author),
    NUDGES,
    QUESTIONS,
)
_MEMBER_GET = _Read(select(MEMBERS).where(MEMBERS.c.community == _p("c"), MEMBERS.c.member == _p("member")), MEMBERS)
_MEMBER_ALL = _Read(select(MEMBERS).where(MEMBERS.c.community == _p("c")).order_by(MEMBERS.c.member), MEMBERS)
_MEMBER_HELPERS = _Read(
    select(MEMBERS)
    .where(MEMBERS.c.community == _p("c"), MEMBERS.c.helper.is_(True), MEMBERS.c.optout.is_(False))
    .order_by(MEMBERS.c.member),
    MEMBERS,
)
_OUTBOX_GET = _Read(select(OUTBOX).where(OUTBOX.c.key == _p("key")), OUTBOX)
_OUTBOX_UNSENT = _Read(
    select(OUTBOX).where(OUTBOX.c.sent_at.is_(None)).order_by(OUTBOX.c.created, OUTBOX.c.key).limit(_p("limit")),
    OUTBOX,
)
_KV_GET = _Read(select(KV.c.value).where(KV.c.key == _p("key")), KV)
_SEEN_GET = _Read(select(SEEN.c.key).where(SEEN.c.community == _p("c"), SEEN.c.key == _p("key")), SEEN)


class SqlMessageRepo(_Repo):
    """`bot.ports.MessageRepo`: message metadata, first write wins."""

    def add(self, meta: MessageMeta) -> None:
        """Buffer the message; a message already recorded is left as it is."""
        self._tx._keep_first(
            MESSAGES,
            (meta.community, meta.id),
            {
                "community": meta.community,
                "id": meta.id,
                "room": meta.room,
                "author": meta.author,
                "ts": meta.ts,
                "reply_to": meta.reply_to,
                "thread": meta.thread,
            },
        )

    async def get(self, community: str, id: str) -> MessageMeta | None:
        """The message's metadata, or None."""
        buffered = self._tx._buffered(MESSAGES, (community, id))
        if buffered is not None:
            return _message(SimpleNamespace(**buffered))
        rows = await self._tx._fetch(_MESSAGE_GET, flush=False, c=community, id=id)
        return _message(rows[0]) if rows else None

    async def recent(self, community: str, room: str, limit: int) -> list[MessageMeta]:
        """The room's latest `limit` messages, oldest first."""
        rows = await self._tx._fetch(_MESSAGES_RECENT, c=community, room=room, limit=limit)
        return [_message(r) for r in reversed(rows)]

    async def last_in_room(self, community: str, room: str) -> MessageMeta | None:
        """The newest message recorded in the room."""
        latest = await self.recent(community, room, 1)
        return latest[0] if latest else None

    async def active_authors(self, community: str, room: str, since: datetime) -> dict[str, datetime]:
        """Authors who posted in the room at or after `since`, with their latest message time."""
        rows = await self._tx._fetch(_ACTIVE_AUTHORS, c=community, room=room, since=since)
        return {r.author: r.latest for r in rows}


class SqlQuestionRepo(_Repo):
    """`bot.ports.QuestionRepo`: questions, with answers and credited as JSON lists; the last save wins."""

    def save(self, q: Question) -> None:
        """Buffer the question's whole current state (a snapshot: later changes need another save)."""
        self._tx._keep_last(
            QUESTIONS,
            (q.community, q.id),
            {
                "community": q.community,
                "id": q.id,
                "room": q.room,
                "author": q.author,
                "asked_ts": q.asked_ts,
                "thread": q.thread,
                "state": _QSTATE[q.state],
                "answered_by": q.answered_by,
                "first_answer_ts": q.first_answer_ts,
                "resolved_ts": q.resolved_ts,
                "answers": list(q.answers),
                "credited": list(q.credited),
                "nudges": q.nudges,
                "level": q.level,
            },
        )

    async def asked_between(self, community: str, room: str | None, since: datetime, until: datetime
                            ) -> list[Question]:
        """Questions asked in [since, until), oldest first, without their answer lists."""
        await self._tx.flush(frozenset({QUESTIONS.name}))
        return await export.questions(self._tx._conn, community=community, room=room, since=since, until=until)

    async def first_seen(self, community: str, members: Sequence[str]) -> dict[str, datetime]:
        """Each member's earliest question asked or help given."""
        await self._tx.flush(frozenset({QUESTIONS.name, EDGES.name}))
        return await export.first_seen(self._tx._conn, community, members)

    async def communities(self) -> list[str]:
        """Every community with stored questions."""
        await self._tx.flush(frozenset({QUESTIONS.name}))
        return await export.communities(self._tx._conn)

    async def get(self, community: str, id: str) -> Question | None:
        """The question, or None."""
        buffered = self._tx._buffered(QUESTIONS, (community, id))
        if buffered is not None:
            return _question(SimpleNamespace(**buffered))
        rows = await self._tx._fetch(_QUESTION_GET, flush=False, c=community, id=id)
        return _question(rows[0]) if rows else None

    async def live(self, since: datetime) -> list[Question]:
        """Open and stale questions, plus closed ones whose closing time is at or after `since`; oldest first.

        A question's closing time is when it was resolved, else first answered, else asked (withdrawn).
        """
        return [_question(r) for r in await self._tx._fetch(_QUESTIONS_LIVE, since=since)]

    async def page(self, after: tuple[str, str] | None, limit: int) -> list[Question]:
        """All questions ordered by (id, community), the `limit` after the key `after` (keyset pagination)."""
        if after is None:
            rows = await self._tx._fetch(_QUESTIONS_FIRST_PAGE, limit=limit)
        else:
            rows = await self._tx._fetch(_QUESTIONS_PAGE, id=after[0], c=after[1], limit=limit)
        return [_question(r) for r in rows]

    async def unanswered(self, community: str, room: str | None, limit: int) -> list[Question]:
        """Open and stale questions of the community (or one room), oldest first."""
        if room is None:
            rows = await self._tx._fetch(_UNANSWERED, c=community, limit=limit)
        else:
            rows = await self._tx._fetch(_UNANSWERED_IN_ROOM, c=community, room=room, limit=limit)
        return [_question(r) for r in rows]

    async def first_answer_delays(self, community: str, room: str, since: datetime, limit: int) -> list[float]:
        """Seconds from asking to first answer of the `limit` latest answered questions asked in the room at or
        after `since`, oldest first (a busy room has thousands; the ladder keeps the latest few hundred)."""
        rows = await self._tx._fetch(_FIRST_ANSWER_DELAYS, c=community, room=room, since=since, limit=limit)
        return [(r.first_answer_ts - r.asked_ts).total_seconds() for r in reversed(rows)]


class SqlAnswerRepo(_Repo):
    """`bot.ports.AnswerRepo`: answer links, first write wins per (question, message)."""

    def add(self, answer: Answer) -> None:
        """Buffer the link; a link already recorded is left as it is."""
        self._tx._keep_first(
            ANSWERS,
            (answer.community, answer.question, answer.message),
            {
                "community": answer.community,
                "question": answer.question,
                "message": answer.message,
                "author": answer.author,
                "ts": answer.ts,
                "how": answer.how,
            },
        )

    async def for_message(self, community: str, message: str) -> list[Answer]:
        """Links in which `message` is the answer, in time order.

        Links still buffered are merged in rather than written first: a replay asks this mid-batch, and writing
        the batch's answers (and, before them, its questions) early would make it wait on the database."""
        stored = await self._tx._fetch(_ANSWERS_FOR_MESSAGE, flush=False, c=community, message=message)
        links = {r.question: _answer(r) for r in stored}
        for (c, question, m), params in self._tx._buffer(ANSWERS).items():
            if m == message and c == community and question not in links:  # a stored link wins, as on insert
                links[question] = _answer(SimpleNamespace(**params))
        return sorted(links.values(), key=lambda a: (a.ts, a.question))

    async def for_question(self, community: str, question: str) -> list[Answer]:
        """The answers linked to `question`, in time order."""
        return [_answer(r) for r in await self._tx._fetch(_ANSWERS_FOR_QUESTION, c=community, question=question)]


class SqlHelpRepo(_Repo):
    """`bot.ports.HelpRepo`: help edges, one per (question, helper, kind); the first write wins."""

    def add(self, edge: HelpEdge) -> None:
        """Buffer the edge; an edge for the same question, helper and kind is kept as first recorded."""
        self._tx._keep_first(
            EDGES,
            (edge.community, edge.question, edge.helper, edge.kind),
            {
                "community": edge.community,
                "question": edge.question,
                "helper": edge.helper,
                "kind": edge.kind,
                "room": edge.room,
                "asker": edge.asker,
                "ts": edge.ts,
            },
        )

    async def between(self, community: str, helpers: Sequence[str], asker: str, since: datetime) -> list[HelpEdge]:
        """Edges at or after `since` in either direction between `asker` and each of `helpers`, in time order."""
        if not helpers:
            return []
        read = _EDGES_BETWEEN_SQLITE if self._tx._dialect == "sqlite" else _EDGES_BETWEEN
        rows = await self._tx._fetch(read, community=community, helpers=list(helpers), asker=asker, since=since)
        return [_edge(r) for r in rows]

    async def during(self, community: str, room: str | None, since: datetime, until: datetime) -> list[HelpEdge]:
        """Help edges in [since, until), in time order."""
        await self._tx.flush(frozenset({EDGES.name}))
        return await export.help_edges(self._tx._conn, community=community, room=room, since=since, until=until)

    async def in_room(self, community: str, room: str, since: datetime) -> list[HelpEdge]:
        """Edges in the room at or after `since`, in time order."""
        return [_edge(r) for r in await self._tx._fetch(_EDGES_IN_ROOM, c=community, room=room, since=since)]


class SqlNudgeRepo(_Repo):
    """`bot.ports.NudgeRepo`: the nudge ladder's rows; the last save wins."""

    def save(self, nudge: Nudge) -> None:
        """Buffer the nudge row (by community, question, level)."""
        self._tx._keep_last(
            NUDGES,
            (nudge.community, nudge.question, nudge.level),
            {
                "community": nudge.community,
                "question": nudge.question,
                "level": nudge.level,
                "due": nudge.due,
                "state": _NUDGE_STATE[nudge.state],
                "mentioned": list(nudge.mentioned),
                "why": list(nudge.why),
            },
        )

    async def pending(self) -> list[Nudge]:
        """Every pending nudge, earliest due first."""
        return [_nudge(r) for r in await self._tx._fetch(_NUDGES_PENDING)]

    async def due(self, before: datetime, limit: int) -> list[Nudge]:
        """Pending nudges due strictly before `before`, earliest first: one range of `ix_nudges_state_due`."""
        return [_nudge(r) for r in await self._tx._fetch(_NUDGES_DUE, before=before, limit=limit)]

    async def for_question(self, community: str, question: str) -> list[Nudge]:
        """The question's nudges, by level."""
        return [_nudge(r) for r in await self._tx._fetch(_NUDGES_FOR_QUESTION, c=community, question=question)]

    async def pings_since(self, since: datetime) -> list[SentPing]:
        """Sent level-2 nudges that mentioned someone, sent at or after `since`, oldest first, with the question's
        fate: settled once it is no longer open, and who answered it or was credited on it."""
        helpers: dict[tuple[str, str], set[str]] = {}
        for r in await self._tx._fetch(_PINGED_HELPERS, since=since, level=2):
            helpers.setdefault((r.community, r.question), set()).add(r.helper)
        return [
            SentPing(r.community, r.question, r.due, tuple(r.mentioned), r.state != QState.OPEN.value,
                     frozenset(helpers.get((r.community, r.question), ())))
            for r in await self._tx._fetch(_PINGS_SINCE, since=since, level=2)
            if r.mentioned
        ]

    async def reminders_since(self, since: datetime) -> list[SentReminder]:
        """Per (community, room, asker), the latest level-1 nudge sent at or after `since`."""
        rows = await self._tx._fetch(_REMINDERS_SINCE, since=since, level=1)
        return [SentReminder(r.community, r.room, r.author, r.ts) for r in rows]


class SqlMemberRepo(_Repo):
    """`bot.ports.MemberRepo`: members' consent and preferences; the last save wins."""

    def save(self, prefs: MemberPrefs) -> None:
        """Buffer the member's preferences."""
        self._tx._keep_last(
            MEMBERS,
            (prefs.community, prefs.member),
            {
                "community": prefs.community,
                "member": prefs.member,
                "helper": prefs.helper,
                "helper_rooms": list(prefs.helper_rooms),
                "optout": prefs.optout,
                "dms": prefs.dms,
                "language": prefs.language,
                "named_thanks": prefs.named_thanks,
            },
        )

    async def get(self, community: str, member: str) -> MemberPrefs | None:
        """The member's preferences, or None when they never set any."""
        buffered = self._tx._buffered(MEMBERS, (community, member))
        if buffered is not None:
            return _member(SimpleNamespace(**buffered))
        rows = await self._tx._fetch(_MEMBER_GET, flush=False, c=community, member=member)
        return _member(rows[0]) if rows else None

    async def in_community(self, community: str) -> list[MemberPrefs]:
        """Every member of the community who set a preference, by member id."""
        return [_member(r) for r in await self._tx._fetch(_MEMBER_ALL, c=community)]

    async def helpers(self, community: str, room: str) -> list[MemberPrefs]:
        """Opted-in helpers for the room (or the whole community) who did not opt out, by member id."""
        members = map(_member, await self._tx._fetch(_MEMBER_HELPERS, c=community))
        return [m for m in members if not m.helper_rooms or room in m.helper_rooms]


class SqlOutboxRepo(_Repo):
    """Outbox of actions keyed by idempotency key: put before performing, mark sent once the platform accepted."""

    def put(self, key: str, community: str, payload: dict[str, object], created: datetime) -> None:
        """Buffer an entry; a key already put is left as it is (so a replayed event queues nothing twice)."""
        self._tx._keep_first(
            OUTBOX,
            key,
            {"key": key, "community": community, "created": created, "payload": payload, "sent_at": None},
        )

    def mark_sent(self, key: str, ts: datetime) -> None:
        """Buffer: the entry was delivered at `ts`."""
        self._tx._mark_sent(key, ts)

    async def get(self, key: str) -> OutboxItem | None:
        """The entry, or None."""
        rows = await self._tx._fetch(_OUTBOX_GET, key=key)
        return _outbox(rows[0]) if rows else None

    async def unsent(self, limit: int) -> list[OutboxItem]:
        """Entries not yet delivered, oldest first (after a restart: deliver these before new work)."""
        return [_outbox(r) for r in await self._tx._fetch(_OUTBOX_UNSENT, limit=limit)]


class SqlKvRepo(_Repo):
    """Small named string values kept between runs (e.g. the Matrix sync token)."""

    async def get(self, key: str) -> str | None:
        """The value, or None."""
        rows = await self._tx._fetch(_KV_GET, key=key)
        return rows[0].value if rows else None

    def set(self, key: str, value: str) -> None:
        """Buffer: `key` now holds `value`."""
        self._tx._keep_last(KV, key, {"key": key, "value": value})


class SqlSeenRepo(_Repo):
    """Idempotency keys for events that leave no message row (reactions, edits, deletes)."""

    async def first(self, community: str, key: str, ts: datetime) -> bool:
        """Record `key`; True the first time it is seen, False on every later call (in this or any transaction)."""
        if self._tx._buffered(SEEN, (community, key)) is not None:
            return False
        if await self._tx._fetch(_SEEN_GET, c=community, key=key):
            return False
        self._tx._keep_first(SEEN, (community, key), {"community": community, "key": key, "ts": ts})
        return True


class SqlStrikeRepo(_Repo):
    """`bot.ports.StrikeRepo`: one row per strike, (community, member, ts)."""

    def add(self, community: str, member: str, ts: datetime) -> None:
        """Buffer the strike; the same strike recorded twice (a replayed event) stays one row."""
        self._tx._keep_first(STRIKES, (community, member, ts), {"community": community, "member": member, "ts": ts})

    async def clear(self, community: str, member: str) -> int:
        """Delete the member's strikes, buffered or stored; returns how many there were."""
        buffer = self._tx._buffer(STRIKES)
        mine = [k for k in buffer if k[0] == community and k[1] == member]
        for key in mine:
            del buffer[key]
        where = and_(STRIKES.c.community == community, STRIKES.c.member == member)
        return len(mine) + await self._tx._count(delete(STRIKES).where(where))

    async def since(self, since: datetime) -> list[tuple[str, str, datetime]]:
        """(community, member, ts) of every strike at or after `since`, oldest first."""
        return [(r.community, r.member, r.ts) for r in await self._tx._fetch(_STRIKES_SINCE, since=since)]

    async def prune(self, before: datetime) -> int:
        """Delete strikes older than `before`; returns how many."""
        await self._tx.flush(frozenset({STRIKES.name}))
        return await self._tx._count(delete(STRIKES).where(STRIKES.c.ts < before))


def _message(r: Any) -> MessageMeta:
    return MessageMeta(
        community=r.community, room=r.room, id=r.id, author=r.author, ts=r.ts, reply_to=r.reply_to, thread=r.thread
    )


def _question(r: Any) -> Question:
    # Positional, in the dataclass's field order (pinned by a test): every question of a listing comes here.
    return Question(r.community, r.id, r.room, r.author, r.asked_ts, r.thread, _QSTATE_OF[r.state], r.answered_by,
                    r.first_answer_ts, r.resolved_ts, list(r.answers), list(r.credited), r.nudges, r.level)


def _answer(r: Any) -> Answer:
    return Answer(community=r.community, question=r.question, message=r.message, author=r.author, ts=r.ts, how=r.how)


def _edge(r: Any) -> HelpEdge:
    return HelpEdge(
        community=r.community,
        room=r.room,
        helper=r.helper,
        asker=r.asker,
        question=r.question,
        kind=r.kind,
        ts=r.ts,
    )


def _nudge(r: Any) -> Nudge:
    return Nudge(
        community=r.community,
        question=r.question,
        level=r.level,
        due=r.due,
        state=_NUDGE_STATE_OF[r.state],
        mentioned=tuple(r.mentioned),
        why=tuple(r.why),
    )


def _member(r: Any) -> MemberPrefs:
    return MemberPrefs(
        community=r.community,
        member=r.member,
        helper=r.helper,
        helper_rooms=tuple(r.helper_rooms),
        optout=r.optout,
        dms=r.dms,
        language=r.language,
        named_thanks=r.named_thanks,
    )


def _outbox(r: Any) -> OutboxItem:
    return OutboxItem(key=r.key, community=r.community, created=r.created, payload=r.payload, sent_at=r.sent_at)
