"""The in-memory store's tables: plain dictionaries, copied whole by each write transaction.

A write transaction works on a deep copy of :class:`Tables` and the store swaps the copy in when
it commits, so a rollback is dropping the copy, and a reader keeps the committed tables it
started with (one moment, as PostgreSQL's repeatable read and SQLite's snapshots give).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from fader_server.storage.ports import (
    AuditEntry,
    Incident,
    Project,
    Resource,
    RolloutTemplate,
    StoredPlan,
    ThrottleCount,
    ThrottleKey,
    Token,
    User,
    Version,
    Webhook,
)
from fader_server.storage.ports.change_requests import ChangeRequest
from fader_server.storage.ports.incidents import ActionItem
from fader_server.storage.ports.outbox import DeliveryAttempt, OutboxDelivery
from fader_server.storage.ports.usage import DebugEvent


@dataclass(slots=True)
class ResourceRow:
    resource: Resource
    search_text: str


@dataclass(frozen=True, slots=True, order=True)
class UsageKey:
    """The primary key of a rollup row (``usage_minutes`` / ``usage_hours``): `at` is the
    minute or the hour, in UTC."""

    project_id: int
    environment: str
    flag: str
    metric: str
    variant: str
    key_kind: str
    at: datetime


@dataclass(slots=True)
class UsageRow:
    """A rollup row's values; `contexts` (the compressed distinct-context sketch) on hour rows
    of evaluations only."""

    count: int
    total: float
    total_squares: float
    contexts: bytes | None = None


@dataclass(slots=True)
class DebugRow:
    """A debug event; its `received_at` and `key_kind` are set."""

    project_id: int
    environment: str
    event: DebugEvent


@dataclass(slots=True)
class PlanRow:
    plan: StoredPlan
    active: bool
    """True while unfinished: one such plan per project, environment and flag (as the SQL
    schema's unique constraint over a column that is TRUE or NULL)."""


@dataclass(slots=True)
class CountRow:
    count: ThrottleCount
    updated_at: datetime


@dataclass(slots=True)
class OutboxRow:
    """A notification outbox row and its delivery log (attempts oldest first)."""

    delivery: OutboxDelivery
    attempts: list[DeliveryAttempt] = field(default_factory=list)


@dataclass(slots=True)
class Tables:
    projects: dict[int, Project] = field(default_factory=dict)
    resources: dict[int, ResourceRow] = field(default_factory=dict)
    versions: dict[tuple[int, int], Version] = field(default_factory=dict)
    audit: dict[int, AuditEntry] = field(default_factory=dict)
    revisions: dict[tuple[int, str], int] = field(default_factory=dict)
    usage_minutes: dict[UsageKey, UsageRow] = field(default_factory=dict)
    usage_hours: dict[UsageKey, UsageRow] = field(default_factory=dict)
    debug_events: dict[int, DebugRow] = field(default_factory=dict)
    summary_receipts: dict[tuple[int, str], datetime] = field(default_factory=dict)
    users: dict[int, User] = field(default_factory=dict)
    members: dict[tuple[int, int], str] = field(default_factory=dict)
    tokens: dict[int, Token] = field(default_factory=dict)
    templates: dict[int, RolloutTemplate] = field(default_factory=dict)
    plans: dict[int, PlanRow] = field(default_factory=dict)
    incidents: dict[int, Incident] = field(default_factory=dict)
    action_items: dict[int, ActionItem] = field(default_factory=dict)
    webhooks: dict[int, Webhook] = field(default_factory=dict)
    outbox: dict[int, OutboxRow] = field(default_factory=dict)
    login_counts: dict[ThrottleKey, CountRow] = field(default_factory=dict)
    sso_identities: dict[tuple[str, str], int] = field(default_factory=dict)
    sso_grants: dict[tuple[int, int], str] = field(default_factory=dict)
    change_requests: dict[int, ChangeRequest] = field(default_factory=dict)
    last_ids: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def next_id(self, table: str) -> int:
        """The next id of `table`, never reused (like an autoincrement column)."""
        self.last_ids[table] += 1
        return self.last_ids[table]
