"""Security hardening: which kind of key reported each SDK event, the server's receive time as
the window an event counts in, and when each token was last used.

- ``sdk_events.key_kind``: ``server`` or ``client``. Rows written before this revision came
  from keys of either kind; they are marked ``server`` (the kind metric gates trust by default)
  only if the project has no client keys, ``client`` otherwise, so a gate that trusts server
  keys alone never counts what a browser may have sent.
- ``ix_sdk_events_flag_received``: gates count events by ``received_at`` (the server's clock),
  never by the client's ``occurred_at``.
- ``tokens.last_used_at``: shown with the token list, so stale credentials can be found.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("sdk_events") as batch:
        batch.add_column(
            sa.Column("key_kind", sa.String(20), nullable=False, server_default="server")
        )
    op.execute(
        "UPDATE sdk_events SET key_kind = 'client' WHERE project_id IN "
        "(SELECT DISTINCT project_id FROM tokens WHERE kind = 'client' "
        "AND project_id IS NOT NULL)"
    )
    op.create_index(
        "ix_sdk_events_flag_received",
        "sdk_events",
        ["project_id", "environment", "flag", "received_at"],
    )
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("last_used_at", _TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("last_used_at")
    op.drop_index("ix_sdk_events_flag_received", table_name="sdk_events")
    with op.batch_alter_table("sdk_events") as batch:
        batch.drop_column("key_kind")
