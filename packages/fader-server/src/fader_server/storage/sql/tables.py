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

# Single sign-on (storage/ports/sso.py): who a user is at an OpenID provider, and which
# memberships single sign-on granted (so group synchronisation removes only those).
sso_identities = sa.Table(
    "sso_identities",
    metadata,
    sa.Column("issuer", sa.String(500), primary_key=True),
    sa.Column("subject", sa.String(255), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_sso_identities_user", "user_id"),
)

sso_grants = sa.Table(
    "sso_grants",
    metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
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
    sa.Column("plan_id", sa.Integer, sa.ForeignKey("release_plans.id"), nullable=True),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("stage", sa.Integer, nullable=True),
    sa.Column("stage_name", sa.String(200), nullable=True),
    sa.Column("metric", sa.Text, nullable=True),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("timeline", sa.JSON, nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("flag", sa.String(128), nullable=True),
    sa.Column("environment", sa.String(128), nullable=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("opened_by", sa.String(200), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("acknowledged_by", sa.String(200), nullable=True),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resolved_by", sa.String(200), nullable=True),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resolution", sa.Text, nullable=True),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_rollout_incidents_project", "project_id", "id"),
    sa.Index("ix_rollout_incidents_state", "project_id", "state", "id"),
)
"""Incidents: opened by a rollback (the stage, the metric and its values, and the timeline) or
by hand (`plan_id` NULL), then acknowledged and resolved, with a post-mortem `summary`.
`version` is bumped by every write (compare-and-swap)."""

incident_action_items = sa.Table(
    "incident_action_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("rollout_incidents.id"), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("done_by", sa.String(200), nullable=True),
    sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("overdue_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_incident_action_items_incident", "incident_id", "id"),
    sa.Index("ix_incident_action_items_due", "project_id", "status", "due_on", "id"),
    sa.Index("ix_incident_action_items_escalation", "status", "overdue_at", "due_on"),
)
"""A post-mortem's action items (at most three per incident, a rule of the use case): owner,
due day, open or done; `overdue_at` is set once, by the escalation job's compare-and-swap."""

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
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.UniqueConstraint("project_id", "url", name="uq_rollout_webhooks_url"),
)
"""Where notifications go (the table kept its first name: webhooks began with rollouts). The
secret signs each delivery (HMAC-SHA256), so it is kept as is rather than hashed; it is
returned once, at creation, and never logged."""

# ------------------------------------------------------ notification outbox (0010)
webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column(
        "webhook_id",
        sa.Integer,
        sa.ForeignKey("rollout_webhooks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("event", sa.String(20), primary_key=True),
)
"""The event types each webhook subscribes to (storage/ports/outbox.py)."""

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
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
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
)
"""The outbox: one row per audit entry and subscribed webhook, written with the audit entry."""

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "delivery",
        sa.Integer,
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.String(20), nullable=True),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_webhook_attempts_delivery", "delivery", "id"),
)
"""The delivery log: every POST's status or error class, duration and next attempt."""

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

# ------------------------------------------------------------------ change requests
change_requests = sa.Table(
    "change_requests",
    metadata,
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
    sa.Column("apply_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("failure", sa.Text, nullable=True),
    sa.Column("applied_by", sa.String(200), nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_change_requests_project", "project_id", "id"),
    sa.Index("ix_change_requests_due", "status", "apply_at"),
)
"""Change requests (``services/change_requests``): a proposal, its operations with their base
versions, its reviews and its schedule, compare-and-swap on `version`."""

# ------------------------------------------------------------------ announcements (SQLite)
announcements = sa.Table(
    "announcements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sqlite_autoincrement=True,
)
"""What PostgreSQL sends with ``NOTIFY``, kept as rows on SQLite for the other workers of one
``fader serve --workers N`` (:mod:`.sqlite_watch`): an environment's new revision
(`channel` ``fader_changes``) or a revoked key (``fader_revoked_tokens``), with the
notification's payload, written in the transaction that made it. Only the newest rows are
kept. Empty on PostgreSQL, whose announcements are notifications; the table is declared on
both so that the schema is one."""
