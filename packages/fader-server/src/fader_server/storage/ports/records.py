"""The records storage reads and writes: plain frozen dataclasses, the vocabulary every layer
shares (the Protocols that move them are in the sibling modules).

Versioned entities (environments, flags, per-environment flag configurations, segments) share one
shape, :class:`Resource`: a JSON `data` document with a monotonically increasing `version`. That
is what makes versions, revert, ETags and audit one mechanism instead of one per entity type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

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
    """A release plan row: the plan and its state as JSON (see :mod:`fader_server.rollout_logic`),
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
    """Something went wrong in production: opened by a release plan's rollback (`plan_id`,
    `stage`, `stage_name`, `metric`, `evidence` and the rollback's `timeline` set) or by a
    person (those None or empty), then acknowledged, resolved, and written up in a post-mortem
    (`summary`; its action items are rows of their own). `state` is ``open``,
    ``acknowledged`` or ``resolved``; `version` is bumped by every write (compare-and-swap).
    See :mod:`fader_server.services.incidents`."""

    id: int
    project_id: int
    plan_id: int | None
    opened_at: datetime
    stage: int | None
    stage_name: str | None
    metric: str | None
    evidence: list[JSON]
    timeline: list[JSON]
    title: str
    severity: str
    flag: str | None
    environment: str | None
    description: str
    opened_by: str
    state: str
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None
    summary: str
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Webhook:
    """A notification endpoint subscribed to event types. `secret` signs deliveries; it leaves
    the server once, in the answer to its creation, and is never logged."""

    id: int
    project_id: int
    url: str
    description: str
    secret: str = field(repr=False)
    created_by: str
    created_at: datetime
    events: tuple[str, ...] = ("rollout",)
    """The event types it subscribes to (:mod:`fader_server.storage.ports.outbox`)."""
    enabled: bool = True
    """A disabled webhook keeps its pending deliveries until it is enabled again."""


@dataclass(frozen=True, slots=True)
class EventTotals:
    """Measurements of one custom metric for one variant: how many, and the sum and sum of
    squares of their values (the sufficient statistics of a mean and a variance)."""

    count: int
    total: float
    total_squares: float


@dataclass(frozen=True, slots=True)
class VariantTotals:
    """What SDKs reported for one variant of one flag in a time window: evaluations that served
    it (`exposures`) and custom metrics by name."""

    exposures: int
    events: Mapping[str, EventTotals]


ChangeListener = Callable[[Sequence[EnvironmentChange]], None]
RevocationListener = Callable[[Sequence[int]], None]
"""Called with the ids of tokens whose revocation committed
(:meth:`~fader_server.storage.ports.store.ChangeFeed.subscribe_revocations`)."""
