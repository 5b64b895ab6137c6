"""PostgreSQL: room in the rollup tables' pages for their rows' next versions.

Every summary updates the same few hundred rollup rows (this minute's and this hour's, per
flag, variant and metric). PostgreSQL writes each update as a new row version; when the page
holding the row has room, the new version goes in the same page and the old one is reclaimed
by the next visit to that page, with no index change and no vacuum ("heap-only tuples"). Full
pages (the default fill factor, 100) send every update to another page, and the table grows
by a row version per update until autovacuum runs: bench/events saw 177 MB of dead versions
for 960 live rows after ten minutes. A fill factor of 50 leaves half of every page for the
rows' next versions, and autovacuum is asked to visit these small, hot tables sooner.

Existing pages keep their layout until rewritten; new pages (every minute brings new rows)
follow the setting. SQLite rewrites a row in place: nothing to do there.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLES = ("usage_minutes", "usage_hours")
SETTINGS = (
    "fillfactor = 50, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET ({SETTINGS})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(
            f"ALTER TABLE {table} RESET "
            "(fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)"
        )
