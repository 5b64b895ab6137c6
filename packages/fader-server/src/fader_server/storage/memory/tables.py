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
    SdkEvent,
    StoredPlan,
    ThrottleCount,
    ThrottleKey,
    Token,
    User,
    Version,
    Webhook,
)


@dataclass(slots=True)
class ResourceRow:
    resource: Resource
    search_text: str


@dataclass(slots=True)
class EventRow:
    project_id: int
    environment: str
    event: SdkEvent
    received_at: datetime


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
class Tables:
    projects: dict[int, Project] = field(default_factory=dict)
    resources: dict[int, ResourceRow] = field(default_factory=dict)
    versions: dict[tuple[int, int], Version] = field(default_factory=dict)
    audit: dict[int, AuditEntry] = field(default_factory=dict)
    revisions: dict[tuple[int, str], int] = field(default_factory=dict)
    events: list[EventRow] = field(default_factory=list)
    users: dict[int, User] = field(default_factory=dict)
    members: dict[tuple[int, int], str] = field(default_factory=dict)
    tokens: dict[int, Token] = field(default_factory=dict)
    templates: dict[int, RolloutTemplate] = field(default_factory=dict)
    plans: dict[int, PlanRow] = field(default_factory=dict)
    incidents: dict[int, Incident] = field(default_factory=dict)
    webhooks: dict[int, Webhook] = field(default_factory=dict)
    login_counts: dict[ThrottleKey, CountRow] = field(default_factory=dict)
    last_ids: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def next_id(self, table: str) -> int:
        """The next id of `table`, never reused (like an autoincrement column)."""
        self.last_ids[table] += 1
        return self.last_ids[table]
