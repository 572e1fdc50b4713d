"""lien's tables (SQLAlchemy 2.0 declarative), no behaviour. No column ever holds message text.

`answers` and `credited` of a question are JSON lists on the question row rather than child rows: the engine
saves a question whole on every state change, so one single-row upsert per save keeps replay fast and the order
exact; the lists are short, and `answers` (the answer links with author and `how`) is queryable on its own.
`forget_member` rewrites the few lists naming a member.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: Ids are platform ids (Discord snowflakes, Matrix event/room/user ids), which stay well below this.
ID = String(255)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A tz-aware UTC timestamp: naive values are refused on the way in, UTC-aware ones come out (SQLite too)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: lien stores tz-aware UTC timestamps only")
        value = value.astimezone(UTC)
        # SQLite's DATETIME keeps no offset: store the UTC wall time, so text order is time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with predictable constraint and index names (migrations refer to them)."""

    metadata = MetaData(naming_convention=NAMING)


class MessageRow(Base):
    """Metadata of a processed message: ids, author, room, time, links. Never its text."""

    __tablename__ = "messages"

    community: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    room: Mapped[str] = mapped_column(ID)
    author: Mapped[str] = mapped_column(ID)
    ts: Mapped[datetime] = mapped_column(UtcDateTime())
    reply_to: Mapped[str | None] = mapped_column(ID)
    thread: Mapped[str | None] = mapped_column(ID)

    __table_args__ = (Index("ix_messages_room_ts", "community", "room", "ts"),)


class QuestionRow(Base):
    """A tracked question and its state; `answers` (message ids) and `credited` (member ids) are JSON lists."""

    __tablename__ = "questions"

    community: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    room: Mapped[str] = mapped_column(ID)
    author: Mapped[str] = mapped_column(ID)
    asked_ts: Mapped[datetime] = mapped_column(UtcDateTime())
    thread: Mapped[str | None] = mapped_column(ID)
    state: Mapped[str] = mapped_column(String(16))
    answered_by: Mapped[str | None] = mapped_column(ID)
    first_answer_ts: Mapped[datetime | None] = mapped_column(UtcDateTime())
    resolved_ts: Mapped[datetime | None] = mapped_column(UtcDateTime())
    answers: Mapped[list[str]] = mapped_column(JSON)
    credited: Mapped[list[str]] = mapped_column(JSON)
    nudges: Mapped[int] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_questions_open_by_room", "community", "room", "state", "asked_ts"),
        Index("ix_questions_state_asked", "community", "state", "asked_ts"),
        # Keyset pagination over all questions in (id, community) order (`page`, used by simulate's summary).
        Index("ix_questions_id", "id", "community"),
    )


class AnswerRow(Base):
    """A message linked to a question as an answer, and why (`how`)."""

    __tablename__ = "answers"

    community: Mapped[str] = mapped_column(ID, primary_key=True)
    question: Mapped[str] = mapped_column(ID, primary_key=True)
    message: Mapped[str] = mapped_column(ID, primary_key=True)
    author: Mapped[str] = mapped_column(ID)
    ts: Mapped[datetime] = mapped_column(UtcDateTime())
    how: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        ForeignKeyConstraint(
            ["community", "question"], ["questions.community", "questions.id"], ondelete="CASCADE"
        ),
        Index("ix_answers_message", "community", "message"),
    )


class HelpEdgeRow(Base):
    """`helper` helped `asker` on `question`; one edge per (question, helper, kind), so replays do not inflate."""

    __tablename__ = "help_edges"

    community: Mapped[str] = mapped_column(ID, primary_key=True)
    question: Mapped[str] = mapped_column(ID, primary_key=True)
    helper: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    room: Mapped[str] = mapped_column(ID)
    asker: Mapped[str] = mapped_column(ID)
    ts: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_help_edges_room_ts", "community", "room", "ts"),
        # The other party last: `between` tests it in the index (migration 0002).
        Index("ix_help_edges_asker_ts_helper", "community", "asker", "ts", "helper"),
        Index("ix_help_edges_helper_ts_asker", "community", "helper", "ts", "asker"),
    )


class HelpAggregateRow(Base):
    """Counts of help edges past retention: what survives `purge` of the edges themselves."""

    __tablename__ = "help_aggregates"

    community: Mapped[str] = mapped_column(ID, primary_key=True)
    room: Mapped[str] = mapped_column(ID, primary_key=True)
    helper: Mapped[str] = mapped_column(ID, primary_key=True)
    asker: Mapped[str] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    first_ts: Mapped[datetime] = mapped_column(UtcDateTime())
    last_ts: Mapped[datetime] = mapped_column(UtcDateTime())


class NudgeRow(Base):
    """One rung of a question's nudge ladder; `mentioned` and `why` are parallel JSON lists."""

    __tablename__ = "nudges"

    community: Mapped[str] = mapped_column(ID, primary_key=True)
    question: Mapped[str] = mapped_column(ID, primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True)
    due: Mapped[datetime] = mapped_column(UtcDateTime())
    state: Mapped[str] = mapped_column(String(16))
    mentioned: Mapped[list[str]] = mapped_column(JSON)
    why: Mapped[list[str]] = mapped_column(JSON)

    __table_args__ = (
        ForeignKeyConstraint(
            ["community", "question"], ["questions.community", "questions.id"], ondelete="CASCADE"
        ),
        # Key columns after `due` give a total order straight from the index: "due work" is one range read.
        Index("ix_nudges_state_due", "state", "due", "community", "question", "level"),
    )


class MemberRow(Base):
    """A member's consent and preferences."""

    __tablename__ = "members"

    community: Mapped[str] = mapped_column(ID, primary_key=True)
    member: Mapped[str] = mapped_column(ID, primary_key=True)
    helper: Mapped[bool] = mapped_column(Boolean)
    helper_rooms: Mapped[list[str]] = mapped_column(JSON)
    optout: Mapped[bool] = mapped_column(Boolean)
    dms: Mapped[bool] = mapped_column(Boolean)
    language: Mapped[str | None] = mapped_column(String(16))
    named_thanks: Mapped[bool] = mapped_column(Boolean)


class OutboxRow(Base):
    """An action to perform, keyed by its idempotency key; `sent_at` is set once the platform accepted it."""

    __tablename__ = "outbox"

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    community: Mapped[str] = mapped_column(ID)
    created: Mapped[datetime] = mapped_column(UtcDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index(
            "ix_outbox_unsent",
            "created",
            "key",
            sqlite_where=text("sent_at IS NULL"),
            postgresql_where=text("sent_at IS NULL"),
        ),
    )


class KvRow(Base):
    """Small named values the edges keep between runs (e.g. the Matrix sync token)."""

    __tablename__ = "kv"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SeenEventRow(Base):
    """Idempotency keys of handled events that leave no message row (reactions, edits, deletes)."""

    __tablename__ = "seen_events"

    community: Mapped[str] = mapped_column(ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime())


class GuardStrikeRow(Base):
    """One guard strike against a member: only who and when (the guard's ladder counts them within its window)."""

    __tablename__ = "guard_strikes"

    community: Mapped[str] = mapped_column(ID, primary_key=True)
    member: Mapped[str] = mapped_column(ID, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
