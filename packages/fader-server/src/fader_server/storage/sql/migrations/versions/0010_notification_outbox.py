"""Notifications that are not lost: webhook subscriptions, the outbox and the delivery log.

Webhooks get an ``enabled`` switch and the event types they subscribe to
(``webhook_events``); every existing webhook keeps hearing what it heard, rollout decisions.
``webhook_deliveries`` is the outbox, written in the transaction of each audited change, and
``webhook_attempts`` the delivery log.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("rollout_webhooks") as batch:
        batch.add_column(sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()))
    op.create_table(
        "webhook_events",
        sa.Column(
            "webhook_id",
            sa.Integer,
            sa.ForeignKey("rollout_webhooks.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("event", sa.String(20), primary_key=True),
    )
    op.execute(
        "INSERT INTO webhook_events (webhook_id, event) SELECT id, 'rollout' FROM rollout_webhooks"
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column(
            "webhook_id",
            sa.Integer,
            sa.ForeignKey("rollout_webhooks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("audit_id", sa.Integer, sa.ForeignKey("audit_log.id"), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("round_start", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index("ix_webhook_deliveries_webhook", "webhook_deliveries", ["webhook_id", "id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery",
            sa.Integer,
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", _TS, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(20), nullable=True),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=True),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery", "id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
    with op.batch_alter_table("rollout_webhooks") as batch:
        batch.drop_column("enabled")
