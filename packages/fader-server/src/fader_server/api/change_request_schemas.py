"""Pydantic models of the change-request API (``api/change_requests.py``): shapes only; what
an operation means is checked by the use case and the engine."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from fader_server.api.schemas import (
    MAX_INTEGER,
    Comment,
    ConfigIn,
    FlagFields,
    Key,
    Page,
    SegmentFields,
    Serial,
    Strict,
    Timestamp,
)

Text = Annotated[str, Field(max_length=5000)]
BaseVersion = Annotated[
    int | None,
    Field(
        default=None,
        ge=0,
        le=MAX_INTEGER,
        description="the version you read (0: not yet stored); refused when not current",
    ),
]


class ProposalIn(Strict):
    """The rationale, in the shape of a short design proposal."""

    problem: Text
    change: Text
    alternatives: Text = ""
    rollback: Text = Field(default="", max_length=5000, description="how it will be undone")


class FlagConfigOp(Strict):
    """Set a flag's configuration in an environment: give `config`, `enabled` (a toggle) or
    `restore_version` (an earlier version); toggles and restores are resolved into the
    configuration they produce when proposed."""

    kind: Literal["flag_config"]
    environment: Key
    flag: Key
    config: ConfigIn | None = None
    enabled: bool | None = None
    restore_version: Serial | None = None
    base_version: BaseVersion = None


class FlagOp(Strict):
    """Create or change a flag's definition."""

    kind: Literal["flag"]
    flag: Key
    definition: FlagFields
    base_version: BaseVersion = None


class SegmentOp(Strict):
    """Create or change a segment."""

    kind: Literal["segment"]
    segment: Key
    definition: SegmentFields
    base_version: BaseVersion = None


class FlagDeleteOp(Strict):
    kind: Literal["flag_delete"]
    flag: Key
    base_version: BaseVersion = None


class SegmentDeleteOp(Strict):
    kind: Literal["segment_delete"]
    segment: Key
    base_version: BaseVersion = None


class RolloutStartOp(Strict):
    """Start a pending release plan."""

    kind: Literal["rollout_start"]
    rollout: Serial
    base_version: BaseVersion = None


Operation = Annotated[
    FlagConfigOp | FlagOp | SegmentOp | FlagDeleteOp | SegmentDeleteOp | RolloutStartOp,
    Field(discriminator="kind"),
]
Context = dict[str, Any]


class ChangeRequestIn(Strict):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    proposal: ProposalIn
    operations: list[Operation] = Field(min_length=1, max_length=50)
    contexts: list[Context] = Field(
        default=[],
        max_length=1000,
        description="contexts for the impact preview (at most 64 KiB); default: recent ones",
    )
    apply_at: Timestamp | None = Field(default=None, description="apply then, once approved")


class ChangeRequestUpdate(Strict):
    """What the author changes; omitted fields are kept. New `operations` are resolved
    against the current versions and discard the approvals given so far."""

    title: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    proposal: ProposalIn | None = None
    operations: list[Operation] | None = Field(default=None, min_length=1, max_length=50)
    contexts: list[Context] | None = Field(default=None, max_length=1000)
    apply_at: Timestamp | None = None
    unschedule: bool = Field(default=False, description="remove apply_at")


class ReviewIn(Strict):
    body: Annotated[str, Field(max_length=5000)] | None = None


class CommentIn(Strict):
    body: Annotated[str, Field(min_length=1, max_length=5000)]


class CancelIn(Strict):
    comment: Comment = None


class ReviewOut(Strict):
    id: int
    kind: str
    actor: str
    role: str | None
    body: str | None
    at: str


class RequirementOut(Strict):
    environment: str
    approvals: int
    approver_roles: list[str]
    approved_by: list[str]
    met: bool
    reasons: list[str]


class OperationOut(Strict):
    kind: str
    target: str
    environment: str | None = None
    flag: str | None = None
    segment: str | None = None
    rollout: int | None = None
    base_version: int
    source: str | None = None
    before: Any
    after: Any
    diff: list[dict[str, Any]] = Field(description="as the audit log shows changes")


class ExampleOut(Strict):
    key: str
    before: str | None
    after: str | None


class FlagImpactOut(Strict):
    environment: str
    flag: str
    evaluated: int
    changed: int
    examples: list[ExampleOut]


class ImpactOut(Strict):
    source: Literal["uploaded", "usage", "none"]
    contexts: int
    flags: list[FlagImpactOut]


class ChangeRequestSummary(Strict):
    id: int
    title: str
    author: str
    status: str
    targets: list[str]
    apply_at: datetime | None
    failure: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class ChangeRequestOut(ChangeRequestSummary):
    proposal: dict[str, str]
    applied_by: str | None
    operations: list[OperationOut]
    reviews: list[ReviewOut]
    requirements: list[RequirementOut]
    affected: dict[str, list[str]] = Field(
        description="protected environment → how the request changes what it serves"
    )
    moved: list[str] = Field(description="bases that moved since it was proposed")
    contexts: int = Field(description="contexts uploaded for the impact preview")
    impact: ImpactOut | None = None


class ChangeRequestPage(Page):
    items: list[ChangeRequestSummary]
