"""Initial schema.

Reason: lien's first release needs durable state so that a restart loses nothing: message metadata (never text)
for linking answers, tracked questions and their answers, help edges and the aggregates that outlive retention,
the nudge ladder as rows (the row is the truth, the scheduler only a timer), members' consent, an outbox of
actions keyed for idempotent delivery, small key-values (Matrix sync token) and seen-event keys.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

ID = sa.String(255)


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table of lien's first schema."""
    op.create_table(
        "messages",
        sa.Column("community", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("room", ID, nullable=False),
        sa.Column("author", ID, nullable=False),
        _ts("ts"),
        sa.Column("reply_to", ID, nullable=True),
        sa.Column("thread", ID, nullable=True),
        sa.PrimaryKeyConstraint("community", "id", name="pk_messages"),
    )
    op.create_index("ix_messages_room_ts", "messages", ["community", "room", "ts"])

    op.create_table(
        "questions",
        sa.Column("community", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("room", ID, nullable=False),
        sa.Column("author", ID, nullable=False),
        _ts("asked_ts"),
        sa.Column("thread", ID, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("answered_by", ID, nullable=True),
        _ts("first_answer_ts", nullable=True),
        _ts("resolved_ts", nullable=True),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("credited", sa.JSON(), nullable=False),
        sa.Column("nudges", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("community", "id", name="pk_questions"),
    )
    op.create_index("ix_questions_open_by_room", "questions", ["community", "room", "state", "asked_ts"])
    op.create_index("ix_questions_state_asked", "questions", ["community", "state", "asked_ts"])
    op.create_index("ix_questions_id", "questions", ["id", "community"])

    op.create_table(
        "answers",
        sa.Column("community", ID, nullable=False),
        sa.Column("question", ID, nullable=False),
        sa.Column("message", ID, nullable=False),
        sa.Column("author", ID, nullable=False),
        _ts("ts"),
        sa.Column("how", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["community", "question"],
            ["questions.community", "questions.id"],
            name="fk_answers_community_questions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("community", "question", "message", name="pk_answers"),
    )
    op.create_index("ix_answers_message", "answers", ["community", "message"])

    op.create_table(
        "help_edges",
        sa.Column("community", ID, nullable=False),
        sa.Column("question", ID, nullable=False),
        sa.Column("helper", ID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("room", ID, nullable=False),
        sa.Column("asker", ID, nullable=False),
        _ts("ts"),
        sa.PrimaryKeyConstraint("community", "question", "helper", "kind", name="pk_help_edges"),
    )
    op.create_index("ix_help_edges_room_ts", "help_edges", ["community", "room", "ts"])
    op.create_index("ix_help_edges_asker_ts", "help_edges", ["community", "asker", "ts"])
    op.create_index("ix_help_edges_helper_ts", "help_edges", ["community", "helper", "ts"])

    op.create_table(
        "help_aggregates",
        sa.Column("community", ID, nullable=False),
        sa.Column("room", ID, nullable=False),
        sa.Column("helper", ID, nullable=False),
        sa.Column("asker", ID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        _ts("first_ts"),
        _ts("last_ts"),
        sa.PrimaryKeyConstraint("community", "room", "helper", "asker", "kind", name="pk_help_aggregates"),
    )

    op.create_table(
        "nudges",
        sa.Column("community", ID, nullable=False),
        sa.Column("question", ID, nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        _ts("due"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("mentioned", sa.JSON(), nullable=False),
        sa.Column("why", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["community", "question"],
            ["questions.community", "questions.id"],
            name="fk_nudges_community_questions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("community", "question", "level", name="pk_nudges"),
    )
    op.create_index("ix_nudges_state_due", "nudges", ["state", "due", "community", "question", "level"])

    op.create_table(
        "members",
        sa.Column("community", ID, nullable=False),
        sa.Column("member", ID, nullable=False),
        sa.Column("helper", sa.Boolean(), nullable=False),
        sa.Column("helper_rooms", sa.JSON(), nullable=False),
        sa.Column("optout", sa.Boolean(), nullable=False),
        sa.Column("dms", sa.Boolean(), nullable=False),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("named_thanks", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("community", "member", name="pk_members"),
    )

    op.create_table(
        "outbox",
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("community", ID, nullable=False),
        _ts("created"),
        sa.Column("payload", sa.JSON(), nullable=False),
        _ts("sent_at", nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_outbox"),
    )
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["created", "key"],
        sqlite_where=sa.text("sent_at IS NULL"),
        postgresql_where=sa.text("sent_at IS NULL"),
    )

    op.create_table(
        "kv",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_kv"),
    )

    op.create_table(
        "seen_events",
        sa.Column("community", ID, nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        _ts("ts"),
        sa.PrimaryKeyConstraint("community", "key", name="pk_seen_events"),
    )


def downgrade() -> None:
    """Drop every table of the first schema."""
    for table in (
        "seen_events",
        "kv",
        "outbox",
        "members",
        "nudges",
        "help_aggregates",
        "help_edges",
        "answers",
        "questions",
        "messages",
    ):
        op.drop_table(table)
