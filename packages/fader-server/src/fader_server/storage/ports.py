"""What the services need from storage, as Protocols (the consumer defines the interface).

Services never import :mod:`fader_server.storage.sql`; they receive a :class:`Store` built by
``app`` or ``cli``. An in-memory implementation of these Protocols would be an honest stand-in.

Versioned entities (environments, flags, per-environment flag configurations, segments) share one
shape, :class:`Resource`: a JSON `data` document with a monotonically increasing `version`. That
is what makes versions, revert, ETags and audit one mechanism instead of one per entity type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

JSON = dict[str, Any]


class ResourceType(StrEnum):
    ENVIRONMENT = "environment"
    FLAG = "flag"
    CONFIG = "config"
    SEGMENT = "segment"


PROJECT_SCOPE = ""
"""`scope` of resources that belong to the whole project (flags, segments, environments);
a flag configuration's scope is its environment key."""


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    key: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Resource:
    id: int
    project_id: int
    type: ResourceType
    scope: str
    key: str
    version: int
    data: JSON
    deleted: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Version:
    resource_id: int
    version: int
    data: JSON
    deleted: bool
    actor: str
    comment: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    project_id: int | None
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_key: str
    environment: str | None
    version: int | None
    diff: list[JSON]
    comment: str | None


@dataclass(frozen=True, slots=True)
class NewAuditEntry:
    project_id: int | None
    actor: str
    action: str
    entity_type: str
    entity_key: str
    environment: str | None
    version: int | None
    diff: list[JSON]
    comment: str | None


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    password_hash: str
    instance_admin: bool
    created_at: datetime


class TokenKind(StrEnum):
    ADMIN = "admin"
    USER = "user"
    SERVER = "server"
    CLIENT = "client"


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    kind: TokenKind
    name: str
    token_hash: str
    project_id: int | None
    environment_key: str | None
    user_id: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    created_by: str
    last_used_at: datetime | None = None
    """When it last authenticated, to the minute at best (recorded off the request path)."""


@dataclass(frozen=True, slots=True)
class NewToken:
    kind: TokenKind
    name: str
    token_hash: str
    project_id: int | None
    environment_key: str | None
    user_id: int | None
    expires_at: datetime | None
    created_by: str


class ThrottleScope(StrEnum):
    """What a login-throttle counter counts failures of."""

    PAIR = "pair"  # one username from one address
    USERNAME = "username"  # one username, from every address
    ADDRESS = "address"  # one address, for every username


@dataclass(frozen=True, slots=True, order=True)
class ThrottleKey:
    scope: ThrottleScope
    username: str  # "" for ADDRESS
    address: str  # "" for USERNAME


@dataclass(frozen=True, slots=True)
class ThrottleCount:
    """One login-throttle counter (see :mod:`fader_server.services.login_throttle`)."""

    key: ThrottleKey
    failures: int
    window_start: datetime
    last_failure_at: datetime | None
    last_success_at: datetime | None


@dataclass(frozen=True, slots=True)
class EnvironmentChange:
    """An environment's SDK snapshot moved to `revision` (published after the commit)."""

    project_id: int
    project_key: str
    environment: str
    revision: int


@dataclass(frozen=True, slots=True)
class SdkEvent:
    """One exposure or custom event reported by an SDK.

    `occurred_at` is the reporter's claim and is kept for reading only; the store adds the
    server's receive time, which alone decides which plan window an event counts in.
    `key_kind` is the kind of key that reported it, ``server`` or ``client`` (public, so
    metric gates trust only server keys unless a plan says otherwise)."""

    kind: str
    flag: str | None
    variant: str | None
    reason: str | None
    name: str | None
    value: float | None
    targeting_key: str | None
    occurred_at: datetime
    key_kind: str = "server"


@dataclass(frozen=True, slots=True)
class RolloutTemplate:
    """Stages and gates saved under a key, to create release plans from."""

    id: int
    project_id: int
    key: str
    name: str
    data: JSON
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """A release plan row: the plan and its state as JSON (see :mod:`fader_server.rollouts`),
    the flag configuration it started from (`base_config`, restored on rollback), and a
    `version` that every write bumps (compare-and-swap, so no transition happens twice)."""

    id: int
    project_id: int
    flag: str
    environment: str
    template: str | None
    plan: JSON
    state: JSON
    status: str
    base_config: JSON | None
    last_evaluation: JSON | None
    incident_id: int | None
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class NewPlan:
    project_id: int
    flag: str
    environment: str
    template: str | None
    plan: JSON
    state: JSON
    status: str
    created_by: str


@dataclass(frozen=True, slots=True)
class PlanUpdate:
    """What a transition writes; fields left None keep their stored value."""

    state: JSON
    status: str
    active: bool
    last_evaluation: JSON | None = None
    base_config: JSON | None = None
    incident_id: int | None = None


@dataclass(frozen=True, slots=True)
class Incident:
    id: int
    project_id: int
    plan_id: int
    opened_at: datetime
    stage: int
    stage_name: str
    metric: str
    evidence: list[JSON]
    timeline: list[JSON]


@dataclass(frozen=True, slots=True)
class Webhook:
    """A notification endpoint. `secret` signs deliveries; it leaves the server once, in the
    answer to its creation, and is never logged."""

    id: int
    project_id: int
    url: str
    description: str
    secret: str = field(repr=False)
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EventTotals:
    """Custom events of one name for one variant: how many, and the sum and sum of squares
    of their values (the sufficient statistics of a mean and a variance)."""

    count: int
    total: float
    total_squares: float


@dataclass(frozen=True, slots=True)
class VariantTotals:
    """What SDKs reported for one variant of one flag in a time window."""

    exposures: int
    events: Mapping[str, EventTotals]


ChangeListener = Callable[[Sequence[EnvironmentChange]], None]
RevocationListener = Callable[[Sequence[int]], None]
"""Called with the ids of tokens whose revocation committed (``Store.subscribe_revocations``)."""


class Transaction(Protocol):
    """Reads and writes inside one database transaction; everything commits or nothing does."""

    writable: bool
    """True for :meth:`Store.transaction`, False for :meth:`Store.read`: said by the store that
    opened it, so services never guess whether they may write (or must lock)."""

    # projects
    def get_project(self, key: str) -> Project | None: ...
    def get_project_by_id(self, project_id: int) -> Project | None: ...
    def list_projects(self, limit: int, after_key: str | None) -> list[Project]: ...
    def insert_project(self, key: str, name: str, at: datetime) -> Project: ...
    def update_project(self, project_id: int, name: str) -> None: ...

    def lock_project(self, project_id: int) -> None:
        """Wait until no other transaction holds this project's write lock, then hold it until
        this transaction ends (commit or rollback).

        Writes that validate one resource against others (a rule naming a segment, a
        prerequisite naming a flag) take it before their first validation read, so they run
        one after another per project and each sees everything the previous one committed
        (docs/adr/0005-project-write-lock.md). Waiting longer than the database's lock timeout
        raises :class:`~fader_server.errors.StorageUnavailableError` (retryable)."""
        ...

    # versioned resources
    def get_resource(
        self, project_id: int, type: ResourceType, scope: str, key: str
    ) -> Resource | None:
        """The resource, deleted or not (callers decide what a tombstone means)."""
        ...

    def list_resources(
        self,
        project_id: int,
        type: ResourceType,
        scope: str,
        *,
        limit: int,
        after_key: str | None = None,
        query: str | None = None,
    ) -> list[Resource]:
        """Live resources ordered by key; `query` is full-text over their search text."""
        ...

    def insert_resource(
        self,
        project_id: int,
        type: ResourceType,
        scope: str,
        key: str,
        data: JSON,
        search_text: str,
        at: datetime,
    ) -> Resource | None:
        """Version 1 of a new resource; None when one with that identity exists already (a
        concurrent writer inserted it first), so the caller answers with a domain error."""
        ...

    def update_resource(
        self,
        resource: Resource,
        data: JSON,
        *,
        deleted: bool,
        search_text: str,
        at: datetime,
    ) -> Resource | None:
        """Compare-and-swap: write version `resource.version + 1` only if the stored version is
        still `resource.version`; return None when someone else won (no lost update)."""
        ...

    def insert_version(self, version: Version) -> None: ...
    def get_version(self, resource_id: int, version: int) -> Version | None: ...
    def list_versions(self, resource_id: int, limit: int, before: int | None) -> list[Version]: ...

    # audit
    def append_audit(self, entry: NewAuditEntry, at: datetime) -> None: ...
    def list_audit(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        entity_types: Sequence[str] | None = None,
        entity_key: str | None = None,
    ) -> list[AuditEntry]: ...

    # delivery
    def bump_revisions(
        self, project: Project, environments: Sequence[str], at: datetime
    ) -> list[EnvironmentChange]:
        """Move each environment's snapshot to its next revision; the changes are published
        to :meth:`Store.subscribe` listeners (and other replicas) once the transaction commits."""
        ...

    def revision(self, project_id: int, environment: str) -> int:
        """The environment's snapshot revision (0 if nothing was ever written to it)."""
        ...

    def insert_sdk_events(
        self, project_id: int, environment: str, events: Sequence[SdkEvent], at: datetime
    ) -> None: ...

    def usable_keys(self, token_ids: Sequence[int], at: datetime) -> set[int]:
        """The ids among `token_ids` of server and client keys that may still be used at `at`:
        not revoked, not expired, their project and environment still there (one query, for
        the periodic re-check of the keys that open streams hold)."""
        ...

    def announce_revoked(self, token_ids: Sequence[int]) -> None:
        """Once this transaction commits, tell :meth:`Store.subscribe_revocations` listeners
        (and other replicas) that these tokens were revoked, so what they opened ends now."""
        ...

    # guarded rollouts
    def event_totals(
        self,
        project_id: int,
        environment: str,
        flag: str,
        since: datetime,
        key_kinds: Sequence[str] = ("server",),
    ) -> dict[str, VariantTotals]:
        """Per variant: exposures and custom events (by name) of `flag` received since `since`
        (the server's receive time) from SDK keys of the `key_kinds`, aggregated by the
        database (never by loading the events)."""
        ...

    def event_windows(
        self,
        project_id: int,
        environment: str,
        flag: str,
        starts: Sequence[datetime],
        key_kinds: Sequence[str] = ("server",),
    ) -> list[dict[str, VariantTotals]]:
        """:meth:`event_totals` per window, in one query: window `i` holds the events received
        from ``starts[i]`` (increasing) until the next start; the last is open-ended."""
        ...

    def insert_template(
        self, project_id: int, key: str, name: str, data: JSON, created_by: str, at: datetime
    ) -> RolloutTemplate: ...
    def get_template(self, project_id: int, key: str) -> RolloutTemplate | None: ...
    def list_templates(self, project_id: int) -> list[RolloutTemplate]: ...
    def delete_template(self, project_id: int, key: str) -> bool: ...

    def insert_plan(self, plan: NewPlan, at: datetime) -> StoredPlan:
        """Raises :class:`~fader_server.errors.AlreadyExistsError` if the flag already has an
        unfinished plan in that environment."""
        ...

    def get_plan(self, project_id: int, plan_id: int) -> StoredPlan | None: ...
    def list_plans(
        self,
        project_id: int,
        *,
        limit: int,
        before_id: int | None,
        flag: str | None = None,
        status: str | None = None,
    ) -> list[StoredPlan]: ...

    def active_plans(self) -> list[StoredPlan]:
        """Plans the scheduler must look at (running, paused or awaiting approval), any project."""
        ...

    def lock_plan(self, plan_id: int, *, wait: bool) -> StoredPlan | None:
        """The plan, locked until the transaction ends. Without `wait`, None when another
        transaction holds it (PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite's write
        transactions are serialised already)."""
        ...

    def update_plan(self, plan: StoredPlan, update: PlanUpdate, at: datetime) -> StoredPlan | None:
        """Compare-and-swap on `plan.version`; None when someone else wrote first."""
        ...

    def insert_incident(
        self,
        project_id: int,
        plan_id: int,
        opened_at: datetime,
        stage: int,
        stage_name: str,
        metric: str,
        evidence: list[JSON],
        timeline: list[JSON],
    ) -> Incident: ...
    def get_incident(self, project_id: int, incident_id: int) -> Incident | None: ...
    def list_incidents(
        self, project_id: int, *, limit: int, before_id: int | None, plan_id: int | None = None
    ) -> list[Incident]: ...

    def insert_webhook(
        self,
        project_id: int,
        url: str,
        description: str,
        secret: str,
        created_by: str,
        at: datetime,
    ) -> Webhook:
        """Raises :class:`~fader_server.errors.AlreadyExistsError` for a URL already registered
        in the project."""
        ...

    def list_webhooks(self, project_id: int) -> list[Webhook]: ...
    def delete_webhook(self, project_id: int, webhook_id: int) -> bool: ...

    # users and memberships
    def count_users(self) -> int: ...
    def get_user(self, username: str) -> User | None: ...
    def get_user_by_id(self, user_id: int) -> User | None: ...
    def insert_user(
        self, username: str, password_hash: str, instance_admin: bool, at: datetime
    ) -> User:
        """Raises :class:`~fader_server.errors.AlreadyExistsError` if the username is taken,
        also by a transaction that committed after this one's check."""
        ...

    def roles_of(self, user_id: int) -> Mapping[int, str]:
        """project id → role name for one user."""
        ...

    def set_member(self, project_id: int, user_id: int, role: str) -> None: ...
    def remove_member(self, project_id: int, user_id: int) -> bool: ...
    def list_members(self, project_id: int) -> list[tuple[User, str]]: ...

    # tokens
    def find_token(self, token_hash: str) -> Token | None: ...
    def get_token(self, token_id: int) -> Token | None: ...
    def insert_token(self, token: NewToken, at: datetime) -> Token: ...
    def list_tokens(self, project_id: int | None) -> Sequence[Token]: ...
    def revoke_token(self, token_id: int, at: datetime) -> None: ...
    def record_token_use(self, used: Mapping[int, datetime]) -> None:
        """Set each token's `last_used_at` to the given time unless it is already later."""
        ...

    def set_password(self, user_id: int, password_hash: str) -> None: ...
    def revoke_personal_tokens(self, user_id: int, at: datetime) -> list[int]:
        """Revoke the user's unrevoked personal (``user``) tokens; their ids."""
        ...

    # login throttle (services/login_throttle.py)
    def read_login_counts(
        self, keys: Sequence[ThrottleKey]
    ) -> dict[ThrottleKey, ThrottleCount]: ...
    def lock_login_counts(
        self, keys: Sequence[ThrottleKey], at: datetime
    ) -> dict[ThrottleKey, ThrottleCount]:
        """Every key's counter, created empty (window starting `at`) if missing, and locked
        until the transaction ends, so concurrent logins on any replica update it in turn."""
        ...

    def save_login_counts(self, counts: Sequence[ThrottleCount], at: datetime) -> None: ...
    def clear_login_counts(self, username: str) -> None:
        """Forget the username's counters (its own and its pairs'), not its addresses'."""
        ...

    def prune_login_counts(self, idle_before: datetime, trusted_before: datetime) -> int:
        """Delete counters untouched since `idle_before`, except pairs that logged in
        successfully since `trusted_before`; how many went."""
        ...


class Store(Protocol):
    """A database: transactions, plus what `/readyz` needs to know."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A read-write transaction; commits on normal exit, rolls back on an exception."""
        ...

    def read(self) -> AbstractContextManager[Transaction]:
        """A read-only transaction (may run concurrently with writers)."""
        ...

    def ping(self) -> None:
        """Raise :class:`~fader_server.errors.StorageUnavailableError` if the database is down."""
        ...

    def migrations_current(self) -> bool: ...

    def subscribe(self, listener: ChangeListener) -> None:
        """Call `listener` after every commit that changed environments, in this process."""
        ...

    def subscribe_revocations(self, listener: RevocationListener) -> None:
        """Call `listener` after every commit that announced revoked tokens, in this process."""
        ...

    def listen(
        self,
        listener: ChangeListener,
        on_resync: Callable[[], None],
        on_revoked: RevocationListener | None = None,
    ) -> None:
        """Also deliver changes and token revocations committed by *other* processes
        (replicas). `on_resync` runs whenever some may have been missed (e.g. after a lost
        database connection), so the caller re-reads what it holds. A no-op where one process
        owns the database."""
        ...

    def close(self) -> None: ...
