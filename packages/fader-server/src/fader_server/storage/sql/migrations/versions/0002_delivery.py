"""Delivery: per-environment snapshot revisions and the SDK event store.

Existing environments start at revision 1 so that SDKs already holding nothing get a snapshot
and the first change after the upgrade is revision 2.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "environment_revisions",
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("environment", sa.String(128), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
    )
    op.execute(
        "INSERT INTO environment_revisions (project_id, environment, revision, changed_at) "
        "SELECT project_id, key, 1, updated_at FROM resources "
        "WHERE type = 'environment' AND scope = '' AND NOT deleted"
    )
    op.create_table(
        "sdk_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("flag", sa.String(128), nullable=True),
        sa.Column("variant", sa.String(128), nullable=True),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("targeting_key", sa.String(256), nullable=True),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("received_at", _TS, nullable=False),
    )
    op.create_index(
        "ix_sdk_events_flag_time",
        "sdk_events",
        ["project_id", "environment", "flag", "occurred_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_sdk_events_flag_time", table_name="sdk_events")
    op.drop_table("sdk_events")
    op.drop_table("environment_revisions")
