"""Pydantic models of the admin API: the HTTP edge only, every one with ``extra="forbid"`` so
an unknown or misspelt field is a 422 naming it, never silently ignored.

Flag configuration fields keep the names of ``docs/flag-format.md`` (``offVariant``...), so a
configuration can be copied between the API and a document unchanged. The models check shape;
meaning (variants exist, weights sum to 100, regexes compile, no cycles) is the engine's job.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from fader_server.api import deprecation

Key = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=128)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Comment = Annotated[str | None, Field(default=None, max_length=2000)]
FlagKind = Literal["release", "experiment", "ops", "permission"]
FlagType = Literal["boolean", "string", "number", "object"]
RoleName = Literal["viewer", "editor", "admin"]
# Ids and version numbers are SQL INTEGERs (32 bits) counted from 1: no other number names one.
MAX_INTEGER = 2**31 - 1
Serial = Annotated[int, Field(ge=1, le=MAX_INTEGER)]
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: object) -> object:
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.match(value)):
        return value
    raise ValueError("expected an RFC 3339 date-time with an offset, e.g. 2030-01-31T12:00:00Z")


# A date-time in a request body, converted to UTC (storage keeps UTC and SQLite keeps no
# offset). JSON has no date type, so it arrives as a string, which strict mode would refuse;
# lax parsing alone would also take a number or "1700000000" as Unix time.
Timestamp = Annotated[
    AwareDatetime,
    Field(strict=False),
    BeforeValidator(_rfc3339),
    AfterValidator(lambda value: value.astimezone(UTC)),
]


class Strict(BaseModel):
    """Every API model. ``extra="forbid"``: an unknown field is a 422 naming it.
    ``strict=True``: a value must have the JSON type the schema gives it; nothing is coerced
    (``"enabled": "no"``, ``"protected": 0``, ``"version": "3"`` are 422s, not a guess).
    """

    model_config = ConfigDict(extra="forbid", strict=True)


class Page(Strict):
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


# ------------------------------------------------------------------ projects
class ProjectIn(Strict):
    key: Key
    name: Name
    comment: Comment = None


class ProjectPatch(Strict):
    name: Name
    comment: Comment = None


class ProjectOut(Strict):
    key: str
    name: str
    created_at: datetime


class ProjectPage(Page):
    items: list[ProjectOut]


Bucketing = Annotated[
    Literal["v2", "v3"],
    Field(
        description="how percentage splits bucket users: flagd's fractional v2 (Fader's "
        "default) or v3 (flagd providers from 0.6). Changing it moves users between variants."
    ),
]


class ChangeRequestPolicy(Strict):
    """Whether changes to what a (protected) environment serves must go through change
    requests, and who approves them (docs/change-control.md)."""

    required: bool = False
    approvals: Annotated[int, Field(ge=1, le=5)] = 1
    approver_roles: list[RoleName] = Field(default=["admin"], min_length=1, max_length=3)
    emergency_roles: list[RoleName] = Field(
        default=["admin"],
        min_length=1,
        max_length=3,
        description="who may still turn a flag off directly (admins always may)",
    )


class EnvironmentIn(Strict):
    key: Key
    name: Name
    protected: bool = False
    bucketing: Bucketing = "v2"
    change_requests: ChangeRequestPolicy | None = None
    comment: Comment = None


class EnvironmentUpdate(Strict):
    name: Name
    protected: bool = False
    bucketing: Bucketing | None = Field(default=None, description="omit to keep the current one")
    change_requests: ChangeRequestPolicy | None = Field(
        default=None, description="omit to keep the current policy"
    )
    comment: Comment = None


class EnvironmentOut(Strict):
    key: str
    name: str
    protected: bool
    bucketing: str
    change_requests: ChangeRequestPolicy
    version: int
    updated_at: datetime


# --------------------------------------------------------------------- flags
class FlagFields(Strict):
    name: Name
    description: Annotated[str, Field(max_length=5000)] = ""
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = []
    kind: FlagKind = "release"
    type: FlagType
    variants: dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], Any] = Field(
        min_length=1
    )
    owner_team: Annotated[str, StringConstraints(max_length=200)] | None = None
    owner: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        default=None,
        json_schema_extra=deprecation.MARK,
        description=deprecation.FLAG_OWNER.message,
    )
    expected_lifetime_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    client_side: bool = Field(
        default=False, description="client keys may evaluate it (OFREP); server keys see all"
    )
    comment: Comment = None

    def data(self) -> dict[str, Any]:
        """The stored definition: `owner` folds into `owner_team` (its replacement); the key
        names the resource and is not part of it (`FlagIn` has one)."""
        stored = self.model_dump(exclude={"key", "comment", "owner"})
        if stored["owner_team"] is None and self.owner is not None:
            stored["owner_team"] = self.owner
        return stored


class FlagIn(FlagFields):
    key: Key


class FlagOut(Strict):
    key: str
    name: str
    description: str
    tags: list[str]
    kind: str
    type: str
    variants: dict[str, Any]
    owner_team: str | None
    owner: str | None = Field(
        json_schema_extra=deprecation.MARK, description=deprecation.FLAG_OWNER.message
    )
    expected_lifetime_days: int | None
    client_side: bool = False
    version: int
    created_at: datetime
    updated_at: datetime


class FlagPage(Page):
    items: list[FlagOut]


class Clause(Strict):
    attribute: str | None = None
    op: str
    values: list[Any] = []
    negate: bool = False


class Weight(Strict):
    variant: str
    weight: float


class Split(Strict):
    by: str | None = None
    weights: list[Weight]
    bucketing: dict[str, Any] | None = Field(
        default=None,
        description="a vendor's bucketing (LaunchDarkly's or Unleash's hash, docs/bucketing.md), "
        "as the importers write it; absent: Fader's own. The engine checks its parameters",
    )


class Serve(Strict):
    variant: str | None = None
    split: Split | None = None


class Rule(Strict):
    id: str | None = None
    description: str | None = None
    clauses: list[Clause] = []
    variant: str | None = None
    split: Split | None = None


class Prerequisite(Strict):
    flag: str
    variants: list[str]


class ConfigIn(Strict):
    enabled: bool
    offVariant: str  # noqa: N815 - the document format's name
    rules: list[Rule] = []
    default: Serve
    prerequisites: list[Prerequisite] = []
    comment: Comment = None

    def data(self) -> dict[str, Any]:
        return self.model_dump(exclude={"comment"}, exclude_none=True)


class ConfigOut(Strict):
    flag: str
    environment: str
    enabled: bool
    offVariant: str  # noqa: N815
    rules: list[dict[str, Any]]
    default: dict[str, Any]
    prerequisites: list[dict[str, Any]]
    version: int = Field(description="0 until the configuration is first written")


class ToggleIn(Strict):
    enabled: bool | None = Field(default=None, description="omit to flip the current state")
    comment: Comment = None


class RevertIn(Strict):
    version: Serial
    comment: Comment = None


# ------------------------------------------------------------------ segments
class SegmentRule(Strict):
    clauses: list[Clause] = []


class SegmentFields(Strict):
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    description: Annotated[str, Field(max_length=5000)] | None = None
    included: list[str] = []
    excluded: list[str] = []
    rules: list[SegmentRule] = []
    comment: Comment = None

    def data(self) -> dict[str, Any]:
        """The stored definition (without the key `SegmentIn` adds, like `FlagFields.data`)."""
        return self.model_dump(exclude={"key", "comment"}, exclude_none=True)


class SegmentIn(SegmentFields):
    key: Key


class SegmentOut(Strict):
    key: str
    name: str | None = None
    description: str | None = None
    included: list[str]
    excluded: list[str]
    rules: list[dict[str, Any]]
    version: int
    updated_at: datetime


class SegmentPage(Page):
    items: list[SegmentOut]


# ------------------------------------------------------------------- history
class VersionOut(Strict):
    version: int
    data: dict[str, Any]
    deleted: bool
    actor: str
    comment: str | None
    created_at: datetime


class AuditOut(Strict):
    id: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_key: str
    environment: str | None
    version: int | None
    diff: list[dict[str, Any]]
    comment: str | None


class AuditPage(Page):
    items: list[AuditOut]


# -------------------------------------------------------- users and members
class UserIn(Strict):
    username: Key
    password: Annotated[str, StringConstraints(min_length=12, max_length=200)]


class UserOut(Strict):
    username: str
    instance_admin: bool


class MemberIn(Strict):
    role: RoleName
    comment: Comment = None


class MemberOut(Strict):
    username: str
    role: str


class LoginIn(Strict):
    username: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)]


# -------------------------------------------------------------------- tokens
class TokenIn(Strict):
    kind: Literal["admin", "user", "server", "client"]
    name: Name
    project: Key | None = None
    environment: Key | None = None
    expires_at: Timestamp | None = Field(
        default=None,
        description="omit for no expiry; personal tokens, and admin tokens a user creates, "
        "expire in 90 days when omitted and within 365 days at most",
    )


class TokenOut(Strict):
    id: int
    kind: str
    name: str
    project: str | None
    environment: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    created_by: str
    last_used_at: datetime | None = Field(
        default=None, description="when it last authenticated (to about a minute); null: never"
    )


class TokenCreated(TokenOut):
    token: str = Field(description="the secret; shown only in this response")
