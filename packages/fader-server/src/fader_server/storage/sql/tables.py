"""The schema, as SQLAlchemy Core tables.

Migrations under ``migrations/`` create exactly this; `test_migrations` checks they agree.
Times are stored in UTC; JSON columns hold the versioned documents so that SQLite and
PostgreSQL run the same code. Full-text search is dialect-specific and lives in the migration
(SQLite: an FTS5 table `flag_search`; PostgreSQL: a GIN index over `to_tsvector`).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(128), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

resources = sa.Table(
    "resources",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("scope", sa.String(128), nullable=False),
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("search_text", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("project_id", "type", "scope", "key", name="uq_resources_identity"),
)

resource_versions = sa.Table(
    "resource_versions",
    metadata,
    sa.Column("resource_id", sa.Integer, sa.ForeignKey("resources.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("entity_type", sa.String(20), nullable=False),
    sa.Column("entity_key", sa.String(128), nullable=False),
    sa.Column("environment", sa.String(128), nullable=True),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("diff", sa.JSON, nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Index("ix_audit_project", "project_id", "id"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(128), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("instance_admin", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=True),
    sa.Column("environment_key", sa.String(128), nullable=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
)

environment_revisions = sa.Table(
    "environment_revisions",
    metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("environment", sa.String(128), primary_key=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)
"""The version of each environment's SDK snapshot: bumped in the transaction of every write that
changes what the environment serves (its flag configurations, or any flag or segment)."""

usage_minutes = sa.Table(
    "usage_minutes",
    metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("flag", sa.String(128), nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("variant", sa.String(128), nullable=False),
    sa.Column("key_kind", sa.String(20), nullable=False),
    sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("total", sa.Float, nullable=False),
    sa.Column("total_squares", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint(
        "project_id", "environment", "flag", "metric", "variant", "key_kind", "minute"
    ),
    sa.Index("ix_usage_minutes_minute", "minute"),
)
"""Per-minute rollups of what SDKs reported (docs/events.md): one row per environment, flag,
metric, variant, key kind and minute of the server's receive time, however many evaluations
it stands for. `metric` is ``""`` for evaluations (`count` = evaluations), else a custom
metric's name (`count`, `total`, `total_squares` of its values); `flag` and `variant` are
``""`` when the report named none. Guarded rollouts read these."""

usage_hours = sa.Table(
    "usage_hours",
    metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("flag", sa.String(128), nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("variant", sa.String(128), nullable=False),
    sa.Column("key_kind", sa.String(20), nullable=False),
    sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("total", sa.Float, nullable=False),
    sa.Column("total_squares", sa.Float, nullable=False),
    sa.Column("contexts", sa.LargeBinary, nullable=True),
    sa.PrimaryKeyConstraint(
        "project_id", "environment", "flag", "metric", "variant", "key_kind", "hour"
    ),
    sa.Index("ix_usage_hours_hour", "hour"),
    sa.Index("ix_usage_hours_flag_hour", "project_id", "environment", "flag", "metric", "hour"),
)
"""Per-hour rollups, kept far longer than minutes: the same keys and sums, written with the
minute rows at ingestion (no compaction job), plus `contexts`, the merged distinct-context
sketch of evaluation rows (:mod:`fader_engine.sketches`, compressed)."""

debug_events = sa.Table(
    "debug_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("environment", sa.String(128), nullable=False),
    sa.Column("flag", sa.String(128), nullable=False),
    sa.Column("variant", sa.String(128), nullable=True),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("targeting_key", sa.String(256), nullable=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("key_kind", sa.String(20), nullable=False),
    sa.Index("ix_debug_events_flag_received", "project_id", "environment", "flag", "received_at"),
)
"""Individual evaluations, only for flags an SDK was asked to debug (docs/events.md); bounded
per flag and by age, never the main record of usage."""

summary_receipts = sa.Table(
    "summary_receipts",
    metadata,
    sa.Column("token_id", sa.Integer, nullable=False),
    sa.Column("summary_id", sa.String(64), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("token_id", "summary_id"),
    sa.Index("ix_summary_receipts_received", "received_at"),
)
"""The ids of the summaries each SDK key delivered in the last day: an SDK that resends a
summary whose answer it never saw (a connection lost after the commit) is answered
"duplicate" instead of being counted twice (docs/events.md, section 2)."""

rollout_templates = sa.Table(
    "rollout_templates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("key", sa.String(128), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("project_id", "key", name="uq_rollout_templates_key"),
)
"""Release-plan templates: stages and gates saved per project."""

release_plans = sa.Table(
    "release_plans",
    metadata,
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
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint(
        "project_id", "environment", "flag", "active", name="uq_release_plans_active"
    ),
    sa.Index("ix_release_plans_status", "status"),
)
"""Release plans and where they are. `active` is TRUE while a plan is unfinished and NULL
after: NULLs never collide in a unique constraint (on SQLite and PostgreSQL alike), so the
constraint allows one unfinished plan per flag and environment and any number of finished
ones. `version` is bumped by every write (compare-and-swap)."""

rollout_incidents = sa.Table(
    "rollout_incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("plan_id", sa.Integer, sa.ForeignKey("release_plans.id"), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("stage_name", sa.String(200), nullable=False),
    sa.Column("metric", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("timeline", sa.JSON, nullable=False),
    sa.Index("ix_rollout_incidents_project", "project_id", "id"),
)
"""What a rollback leaves behind: the stage, the metric and its values, and the timeline."""

rollout_webhooks = sa.Table(
    "rollout_webhooks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("url", sa.String(2000), nullable=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("secret", sa.String(200), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("project_id", "url", name="uq_rollout_webhooks_url"),
)
"""Where rollout notifications go. The secret signs each delivery (HMAC-SHA256), so it is kept
as is rather than hashed; it is returned once, at creation, and never logged."""

# ------------------------------------------------------------------ login throttle
login_throttle = sa.Table(
    "login_throttle",
    metadata,
    sa.Column("scope", sa.String(16), primary_key=True),
    sa.Column("username", sa.String(128), primary_key=True),
    sa.Column("address", sa.String(64), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_login_throttle_updated", "updated_at"),
)
"""Failed-login counters shared by every replica (``services/login_throttle.py``): one row per
username and address pair (`scope` ``pair``), per username (``username``, `address` empty) and
per address (``address``, `username` empty). A pair row's `last_success_at` marks an address
the user logged in from; idle rows are pruned."""
