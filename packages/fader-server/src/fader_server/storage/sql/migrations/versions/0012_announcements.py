"""Announcements on SQLite: what PostgreSQL sends with ``NOTIFY`` (an environment's new revision,
a revoked key), kept as rows that the other workers of ``fader serve --workers N`` read, so that
each worker resyncs only what changed instead of everything after any commit
(``storage/sql/sqlite_watch.py``). Created on both dialects (the schema is one); it starts
empty: a worker that starts resyncs everything once anyway.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "announcements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        # Ids never reused, even once the newest rows were deleted: a watcher's "after id N"
        # must not skip a new row that took an old id.
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("announcements")
