"""Change requests: proposals of changes to protected environments, their reviews, and the
time a scheduled one is applied at.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "change_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("proposal", sa.JSON, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("author_user_id", sa.Integer, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("operations", sa.JSON, nullable=False),
        sa.Column("reviews", sa.JSON, nullable=False),
        sa.Column("contexts", sa.JSON, nullable=False),
        sa.Column("apply_at", _TS, nullable=True),
        sa.Column("failure", sa.Text, nullable=True),
        sa.Column("applied_by", sa.String(200), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_change_requests_project", "change_requests", ["project_id", "id"])
    op.create_index("ix_change_requests_due", "change_requests", ["status", "apply_at"])


def downgrade() -> None:
    op.drop_index("ix_change_requests_due", table_name="change_requests")
    op.drop_index("ix_change_requests_project", table_name="change_requests")
    op.drop_table("change_requests")
