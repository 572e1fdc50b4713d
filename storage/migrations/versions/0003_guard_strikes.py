"""Guard strikes: who was struck and when, so that the guard's ladder survives a restart.

Reason: the guard counted a member's strikes in memory only, so a restart in the middle of a spam wave sent every
spammer back to a first warning. A strike row holds only the community, the member and the time; the engine keeps
them no longer than the longest strike window, and forget-me deletes them.

Revision ID: 0003_guard_strikes
Revises: 0002_help_edges_covering
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_guard_strikes"
down_revision: str | None = "0002_help_edges_covering"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    """Create the guard_strikes table."""
    op.create_table(
        "guard_strikes",
        sa.Column("community", sa.String(255), nullable=False),
        sa.Column("member", sa.String(255), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("community", "member", "ts", name="pk_guard_strikes"),
    )


def downgrade() -> None:
    """Drop the guard_strikes table."""
    op.drop_table("guard_strikes")
