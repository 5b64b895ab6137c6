"""Usage rollups replace the SDK event rows (docs/events.md): ``usage_minutes``,
``usage_hours`` and ``debug_events`` are created, the stored ``sdk_events`` are folded into
rollups, and ``sdk_events`` is dropped.

The fold keeps what gates and usage views read, by the server's receive time as before:

- exposures become evaluations (metric ``""``) counted per minute and per hour, variant (none
  becomes ``""``) and key kind; their reasons are not kept, as rollups keep none;
- custom events become rows of their metric (``name``) with the count, the sum and the sum of
  squares of their values (a missing value counts as 0, as gates always counted it);
- each hour row of evaluations gets the distinct-context sketch of its targeting keys.

Counts and sums are one ``INSERT ... SELECT ... GROUP BY`` per table, in the database. The
sketches are built here, reading the exposures of one flag at a time in batches of
:data:`BATCH` rows (by id), so memory holds one flag's hour sketches (1 KiB each), never the
events. Minutes and hours are truncated in UTC: PostgreSQL's ``date_trunc`` on the UTC wall
time; on SQLite the text SQLAlchemy stores (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC) cut to the
minute or hour, which is the text SQLAlchemy writes for that minute or hour.

Downgrade recreates an empty ``sdk_events`` (as revision 0005 had it) and drops the rollups:
the events the rollups stand for no longer exist, so there is nothing to unfold.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from fader_engine.sketches import DistinctSketch

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
BATCH = 10_000
"""Exposures read per query while building sketches."""

_events = sa.table(
    "sdk_events",
    sa.column("id", sa.Integer),
    sa.column("project_id", sa.Integer),
    sa.column("environment", sa.String),
    sa.column("kind", sa.String),
    sa.column("flag", sa.String),
    sa.column("variant", sa.String),
    sa.column("name", sa.String),
    sa.column("value", sa.Float),
    sa.column("targeting_key", sa.String),
    sa.column("received_at", _TS),
    sa.column("key_kind", sa.String),
)
_hours = sa.table(
    "usage_hours",
    sa.column("project_id", sa.Integer),
    sa.column("environment", sa.String),
    sa.column("flag", sa.String),
    sa.column("metric", sa.String),
    sa.column("variant", sa.String),
    sa.column("key_kind", sa.String),
    sa.column("hour", _TS),
    sa.column("contexts", sa.LargeBinary),
)


def _rollup_columns(time_column: str) -> list[sa.Column[Any]]:
    return [
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("key_kind", sa.String(20), nullable=False),
        sa.Column(time_column, _TS, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("total", sa.Float, nullable=False),
        sa.Column("total_squares", sa.Float, nullable=False),
    ]


def _key(time_column: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(
        "project_id", "environment", "flag", "metric", "variant", "key_kind", time_column
    )


def upgrade() -> None:
    op.create_table("usage_minutes", *_rollup_columns("minute"), _key("minute"))
    op.create_index("ix_usage_minutes_minute", "usage_minutes", ["minute"])
    op.create_table(
        "usage_hours",
        *_rollup_columns("hour"),
        sa.Column("contexts", sa.LargeBinary, nullable=True),
        _key("hour"),
    )
    op.create_index("ix_usage_hours_hour", "usage_hours", ["hour"])
    op.create_index(
        "ix_usage_hours_flag_hour",
        "usage_hours",
        ["project_id", "environment", "flag", "metric", "hour"],
    )
    op.create_table(
        "summary_receipts",
        sa.Column("token_id", sa.Integer, nullable=False),
        sa.Column("summary_id", sa.String(64), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("token_id", "summary_id"),
    )
    op.create_index("ix_summary_receipts_received", "summary_receipts", ["received_at"])
    op.create_table(
        "debug_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=True),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("targeting_key", sa.String(256), nullable=True),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("key_kind", sa.String(20), nullable=False),
    )
    op.create_index(
        "ix_debug_events_flag_received",
        "debug_events",
        ["project_id", "environment", "flag", "received_at"],
    )
    _fold_counts("usage_minutes", "minute")
    _fold_counts("usage_hours", "hour")
    _fold_sketches()
    op.drop_index("ix_sdk_events_flag_received", table_name="sdk_events")
    op.drop_index("ix_sdk_events_flag_time", table_name="sdk_events")
    op.drop_table("sdk_events")


def _truncated(unit: str) -> sa.ColumnElement[Any]:
    """`received_at` truncated to the UTC minute or hour, as the column type stores it."""
    received = _events.c.received_at
    if op.get_bind().dialect.name == "postgresql":
        # timezone('UTC', x) is x AT TIME ZONE 'UTC': to UTC wall time and back
        return sa.func.timezone("UTC", sa.func.date_trunc(unit, sa.func.timezone("UTC", received)))
    if unit == "minute":
        return sa.func.substr(received, 1, 16).concat(":00.000000")
    return sa.func.substr(received, 1, 13).concat(":00:00.000000")


def _fold_counts(table: str, time_column: str) -> None:
    e = _events.c
    at = _truncated(time_column)
    value = sa.func.coalesce(e.value, 0.0)
    variant = sa.func.coalesce(e.variant, "")
    flag = sa.func.coalesce(e.flag, "")
    columns = [
        "project_id", "environment", "flag", "metric", "variant", "key_kind", time_column,
        "count", "total", "total_squares",
    ]  # fmt: skip
    target = sa.table(table, *[sa.column(name) for name in columns])
    exposures = (
        sa.select(
            e.project_id,
            e.environment,
            e.flag,
            sa.literal(""),
            variant,
            e.key_kind,
            at,
            sa.func.count(),
            sa.literal(0.0),
            sa.literal(0.0),
        )
        .where(e.kind == "exposure", e.flag.is_not(None))
        .group_by(e.project_id, e.environment, e.flag, variant, e.key_kind, at)
    )
    custom = (
        sa.select(
            e.project_id,
            e.environment,
            flag,
            e.name,
            variant,
            e.key_kind,
            at,
            sa.func.count(),
            sa.func.sum(value),
            sa.func.sum(value * value),
        )
        .where(e.kind == "custom", e.name.is_not(None), e.name != "")
        .group_by(e.project_id, e.environment, flag, e.name, variant, e.key_kind, at)
    )
    for rows in (exposures, custom):
        op.get_bind().execute(sa.insert(target).from_select(columns, rows))


def _fold_sketches() -> None:
    """Sketch the targeting keys of each hour row of evaluations, one flag at a time."""
    bind = op.get_bind()
    exposed = sa.and_(
        _events.c.kind == "exposure",
        _events.c.flag.is_not(None),
        _events.c.targeting_key.is_not(None),
    )
    flags = bind.execute(
        sa.select(_events.c.project_id, _events.c.environment, _events.c.flag)
        .where(exposed)
        .distinct()
        .order_by(_events.c.project_id, _events.c.environment, _events.c.flag)
    ).all()
    for project_id, environment, flag in flags:
        sketches: defaultdict[tuple[str, str, datetime], DistinctSketch] = defaultdict(
            DistinctSketch
        )
        after = 0
        while True:
            rows = bind.execute(
                sa.select(
                    _events.c.id,
                    _events.c.variant,
                    _events.c.key_kind,
                    _events.c.received_at,
                    _events.c.targeting_key,
                )
                .where(
                    exposed,
                    _events.c.project_id == project_id,
                    _events.c.environment == environment,
                    _events.c.flag == flag,
                    _events.c.id > after,
                )
                .order_by(_events.c.id)
                .limit(BATCH)
            ).all()
            for _, variant, key_kind, received_at, targeting_key in rows:
                at = received_at.replace(tzinfo=UTC) if received_at.tzinfo is None else received_at
                hour = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
                sketches[(variant or "", key_kind, hour)].add(targeting_key)
            if len(rows) < BATCH:
                break
            after = rows[-1].id
        if sketches:
            bind.execute(
                sa.update(_hours)
                .where(
                    _hours.c.project_id == project_id,
                    _hours.c.environment == environment,
                    _hours.c.flag == flag,
                    _hours.c.metric == "",
                    _hours.c.variant == sa.bindparam("v"),
                    _hours.c.key_kind == sa.bindparam("k"),
                    _hours.c.hour == sa.bindparam("h", type_=_TS),
                )
                .values(contexts=sa.bindparam("sketch")),
                [
                    {"v": variant, "k": key_kind, "h": hour, "sketch": sketch.to_bytes()}
                    for (variant, key_kind, hour), sketch in sketches.items()
                ],
            )


def downgrade() -> None:
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
        sa.Column("key_kind", sa.String(20), nullable=False, server_default="server"),
    )
    op.create_index(
        "ix_sdk_events_flag_time",
        "sdk_events",
        ["project_id", "environment", "flag", "occurred_at"],
    )
    op.create_index(
        "ix_sdk_events_flag_received",
        "sdk_events",
        ["project_id", "environment", "flag", "received_at"],
    )
    op.drop_index("ix_debug_events_flag_received", table_name="debug_events")
    op.drop_table("debug_events")
    op.drop_index("ix_summary_receipts_received", table_name="summary_receipts")
    op.drop_table("summary_receipts")
    op.drop_index("ix_usage_hours_flag_hour", table_name="usage_hours")
    op.drop_index("ix_usage_hours_hour", table_name="usage_hours")
    op.drop_table("usage_hours")
    op.drop_index("ix_usage_minutes_minute", table_name="usage_minutes")
    op.drop_table("usage_minutes")
