"""Guarded rollouts: release-plan templates, plans, incidents and notification webhooks.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollout_templates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("project_id", "key", name="uq_rollout_templates_key"),
    )
    op.create_table(
        "release_plans",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("template", sa.String(128), nullable=True),
        sa.Column("plan", sa.JSON, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("active", sa.Boolean, nullable=True),
        sa.Column("base_config", sa.JSON, nullable=True),
        sa.Column("last_evaluation", sa.JSON, nullable=True),
        sa.Column("incident_id", sa.Integer, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.UniqueConstraint(
            "project_id", "environment", "flag", "active", name="uq_release_plans_active"
        ),
    )
    op.create_index("ix_release_plans_status", "release_plans", ["status"])
    op.create_table(
        "rollout_incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("plan_id", sa.Integer, sa.ForeignKey("release_plans.id"), nullable=False),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("stage_name", sa.String(200), nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("timeline", sa.JSON, nullable=False),
    )
    op.create_index("ix_rollout_incidents_project", "rollout_incidents", ["project_id", "id"])
    op.create_table(
        "rollout_webhooks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.UniqueConstraint("project_id", "url", name="uq_rollout_webhooks_url"),
    )


def downgrade() -> None:
    op.drop_table("rollout_webhooks")
    op.drop_index("ix_rollout_incidents_project", table_name="rollout_incidents")
    op.drop_table("rollout_incidents")
    op.drop_index("ix_release_plans_status", table_name="release_plans")
    op.drop_table("release_plans")
    op.drop_table("rollout_templates")
