"""Pydantic models of the incident API: incidents, their post-mortems and action items.

The models bound sizes and shapes; the service checks the rest (an owner who is a member of
the project, a due day that has not passed, at most three items) and names the field."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints

from fader_server.api.schemas import Comment, Key, Page, Strict
from fader_server.services.incidents import records

Title = Annotated[str, StringConstraints(min_length=1, max_length=records.MAX_TITLE)]
Owner = Annotated[
    str,
    StringConstraints(min_length=1, max_length=records.MAX_OWNER),
    Field(description="the username of a member of the project"),
]
Severity = Literal["critical", "major", "minor"]
State = Literal["open", "acknowledged", "resolved"]
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _day(value: object) -> object:
    if isinstance(value, date) or (isinstance(value, str) and _DAY.match(value)):
        return value
    raise ValueError("expected a calendar day as YYYY-MM-DD, e.g. 2030-01-31")


# A day in a request body: JSON has no date type, so it arrives as a string, which strict mode
# would refuse; lax parsing alone would also take a number as Unix time.
Day = Annotated[
    date,
    Field(strict=False, description="a calendar day (UTC), YYYY-MM-DD"),
    BeforeValidator(_day),
]


class IncidentIn(Strict):
    title: Title
    severity: Severity = "major"
    description: Annotated[str, StringConstraints(max_length=records.MAX_DESCRIPTION)] = ""
    flag: Key | None = Field(default=None, description="the flag concerned, if one is")
    environment: Key | None = Field(default=None, description="where it happens, if known")


class IncidentCommandIn(Strict):
    comment: Comment = None


class ResolveIn(Strict):
    resolution: Annotated[str, StringConstraints(min_length=1, max_length=records.MAX_RESOLUTION)]
    comment: Comment = None


class PostmortemIn(Strict):
    summary: Annotated[str, StringConstraints(max_length=records.MAX_SUMMARY)] = Field(
        description="what happened, why, and what the action items change"
    )


class ActionItemIn(Strict):
    title: Title
    owner: Owner
    due_on: Day


class ActionItemPatch(Strict):
    title: Title | None = None
    owner: Owner | None = None
    due_on: Day | None = None


class ActionItemOut(Strict):
    id: int
    incident: int
    title: str
    owner: str
    due_on: date
    status: Literal["open", "done"]
    state: Literal["open", "overdue", "done"] = Field(
        description="`overdue`: still open after its due day (UTC)"
    )
    done_by: str | None
    done_at: datetime | None
    escalated_at: datetime | None = Field(description="when it was announced overdue")
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int


class ActionItemPage(Page):
    items: list[ActionItemOut]


class IncidentOut(Strict):
    id: int
    title: str
    severity: Severity
    state: State
    flag: str | None
    environment: str | None
    description: str
    opened_by: str
    opened_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None
    summary: str = Field(description="the post-mortem's summary")
    rollout: int | None = Field(description="the release plan whose rollback opened it")
    stage: int | None
    stage_name: str | None
    metric: str | None = Field(description="the gates that found a regression, with their values")
    evidence: list[dict[str, Any]] = Field(description="every gate's result at the rollback")
    timeline: list[dict[str, Any]] = Field(
        description="recorded at a rollback: the plan's transitions and every change to the "
        "flag's configuration in the environment since the plan was created, oldest first"
    )
    version: int
    updated_at: datetime


class IncidentDetail(IncidentOut):
    action_items: list[ActionItemOut]
    events: list[dict[str, Any]] = Field(
        description="the whole timeline, oldest first: the rollback's record merged with every "
        "step of the incident and of its action items"
    )


class IncidentPage(Page):
    items: list[IncidentOut]
