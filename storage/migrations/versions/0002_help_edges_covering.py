"""Help edges: the other party in the asker and helper indexes.

Reason: ranking the helpers of an unanswered question reads the help edges between its asker and the candidate
helpers (`HelpRepo.between`), once per level-2 nudge. With indexes on (community, asker, ts) and (community,
helper, ts) alone, SQLite fetched every table row of the asker's history just to test the other party against
the candidate list; with that party in the index it is tested there, and only matching rows are read. Measured
by bench/nudge_bench.py on 1,000,000 edges and 500 candidates: 2.4 ms -> 1.1 ms per question for the query. The
new indexes start with the old ones' columns, so every query the old ones served still has an index; the old
ones are dropped.

Revision ID: 0002_help_edges_covering
Revises: 0001_initial
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision: str = "0002_help_edges_covering"
down_revision: str | None = "0001_initial"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    """Replace the asker and helper indexes of help_edges by ones that also hold the other party."""
    op.create_index("ix_help_edges_asker_ts_helper", "help_edges", ["community", "asker", "ts", "helper"])
    op.create_index("ix_help_edges_helper_ts_asker", "help_edges", ["community", "helper", "ts", "asker"])
    op.drop_index("ix_help_edges_asker_ts", table_name="help_edges")
    op.drop_index("ix_help_edges_helper_ts", table_name="help_edges")


def downgrade() -> None:
    """Restore the first schema's asker and helper indexes."""
    op.create_index("ix_help_edges_asker_ts", "help_edges", ["community", "asker", "ts"])
    op.create_index("ix_help_edges_helper_ts", "help_edges", ["community", "helper", "ts"])
    op.drop_index("ix_help_edges_asker_ts_helper", table_name="help_edges")
    op.drop_index("ix_help_edges_helper_ts_asker", table_name="help_edges")
